"""What a channel and a stored message cost in the shared zone, measured
from pulse_shm_used_bytes, against the sizing rule docs/operations.md
gives (per channel, per message plus its body and headers, rounded to the
slab's power-of-two classes). Run with -s to see the measured figures that
the table in docs/operations.md comes from."""

import re

import pytest
import requests

# docs/operations.md, "Sizing the shared zone": the headers of
# lib/pulse/store.h's Channel and Message
CHANNEL_HEADER = 112
MESSAGE_HEADER = 72


def slab(n):
    """nginx's slab: a power of two from 8 bytes up to half a page, whole
    4 KiB pages above."""
    if n > 2048:
        return -(-n // 4096) * 4096
    size = 8
    while size < n:
        size *= 2
    return size


def channel_bytes(name):
    # the key is "<group>/<id>", the default group empty: "/<id>"
    return slab(CHANNEL_HEADER + 1 + len(name))


def message_bytes(body, extra=0):
    return slab(MESSAGE_HEADER + body + extra)


def close_to(measured, rule):
    """The rule with what it leaves out (the hash table's share, the
    slab's page headers): within 5 %, and never far under."""
    return 0.95 * rule <= measured <= 1.05 * rule


NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.+)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length 2000;
        pulse_message_timeout 1h;
    }
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
    location = /metrics { pulse_metrics; }
}
"""


def shm_used(n):
    text = requests.get(n.url("/metrics")).text
    return int(float(re.search(r"^pulse_shm_used_bytes (\S+)$", text,
                               re.M).group(1)))


@pytest.fixture(scope="module")
def zone(nginx_factory):
    return nginx_factory(NGINX_CONFIG, shm="64m", workers=1)


def test_a_channel_costs_at_most_the_documented_bytes(zone):
    s = requests.Session()
    s.post(zone.url("/pub/warm"), data="x")
    before = shm_used(zone)
    channels = 2000
    for i in range(channels):
        assert s.post(zone.url("/pub/chan-%05d" % i),
                      data="x").status_code == 202
    per_channel = (shm_used(zone) - before) / channels
    print("\nper channel with one 1-byte message: %.0f bytes" % per_channel)
    assert close_to(per_channel, channel_bytes("chan-00000")
                    + message_bytes(1)), per_channel


@pytest.mark.parametrize("body", [100, 1000, 4000])
def test_a_stored_message_costs_at_most_the_documented_bytes(zone, body):
    s = requests.Session()
    channel = "msgs-%d" % body
    s.post(zone.url("/pub/" + channel), data="x" * body)
    before = shm_used(zone)
    count = 1000
    for _ in range(count):
        assert s.post(zone.url("/pub/" + channel),
                      data="x" * body).status_code == 202
    per_message = (shm_used(zone) - before) / count
    print("\n%d-byte message: %.0f bytes each" % (body, per_message))
    assert close_to(per_message, message_bytes(body)), per_message


def test_event_name_and_content_type_are_counted_in_the_message(zone):
    s = requests.Session()
    headers = {"Content-Type": "application/json", "X-EventSource-Event":
               "bandwidth-sample"}
    s.post(zone.url("/pub/typed"), data="x" * 100, headers=headers)
    before = shm_used(zone)
    for _ in range(1000):
        s.post(zone.url("/pub/typed"), data="x" * 100, headers=headers)
    per_message = (shm_used(zone) - before) / 1000
    print("\n100-byte message with type and event: %.0f bytes each"
          % per_message)
    assert close_to(per_message, message_bytes(
        100, len("application/json") + len("bandwidth-sample"))), per_message
