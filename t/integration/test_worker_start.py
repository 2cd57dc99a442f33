"""A worker that cannot open its doorbell (fault injection,
PULSE_TEST_FAULTS) starts cleanly without a slot: it never posts a
doorbell it does not have, answers subscribers 503 so that they retry, and
still publishes; the other worker serves as before."""

import uuid

import requests

from clients import Stream, parse_sse

CONFIG = """
server {
    listen 127.0.0.1:{port} reuseport;
    location ~ ^/pub/(.*)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
}
"""


def test_a_worker_without_a_doorbell_holds_no_subscribers(nginx_factory):
    n = nginx_factory(CONFIG, globals_conf="env PULSE_TEST_FAULTS=doorbell:1;")
    n.allowed.append(r"doorbell of slot 1 not opened \(injected fault\)")
    n.allowed.append(r"no doorbell for slot 1: this worker cannot hold")
    pids = sorted(n.worker_pids())
    ch = uuid.uuid4().hex
    served, refused = [], 0
    for _ in range(16):  # reuseport spreads them over both workers
        s = Stream(n.url("/sub/" + ch), {"Accept": "text/event-stream"})
        status = s.head().status
        if status == 200:
            served.append(s)
        else:
            assert status == 503, status
            refused += 1
            s.close()
    assert served and refused, (len(served), refused)
    # publishes work on both workers, and reach the served subscribers
    for i in range(8):
        r = requests.post(n.url("/pub/" + ch), data="m%d" % i)
        assert r.status_code == 201, r.status_code
    for s in served:
        body = s.read_until(lambda b: b"data: m7" in b)
        assert [e["data"] for e in parse_sse(body) if "data" in e] == \
            ["m%d" % i for i in range(8)]
    assert sorted(n.worker_pids()) == pids  # nothing crashed


def test_no_worker_with_a_doorbell_still_publishes(nginx_factory):
    n = nginx_factory(CONFIG, globals_conf="env PULSE_TEST_FAULTS=doorbell;")
    n.allowed.append(r"not opened \(injected fault\)")
    n.allowed.append(r"no doorbell for slot \d+")
    pids = sorted(n.worker_pids())
    ch = uuid.uuid4().hex
    s = Stream(n.url("/sub/" + ch), {"Accept": "text/event-stream"})
    assert s.head().status == 503
    r = requests.post(n.url("/pub/" + ch), data="x")
    assert r.status_code == 202
    assert "queued messages: 1" in requests.get(n.url("/pub/" + ch)).text
    assert requests.get(n.url("/sub/" + ch), timeout=5).status_code == 503
    assert sorted(n.worker_pids()) == pids
