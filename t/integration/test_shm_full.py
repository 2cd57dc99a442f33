"""A full shared-memory zone: old messages are expired first, then the
publish fails with 507 and one logged alert, never a crash; publishing
works again once messages expire, and subscribers were served all along."""

import time

import requests

from clients import sse

NGINX_CONFIG = """
client_max_body_size 1m;
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.+)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length 1000;
        pulse_message_timeout 2s;
    }
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
}
"""


def test_full_zone_is_507_with_one_alert_then_recovers(nginx_factory):
    n = nginx_factory(NGINX_CONFIG, shm="1m")
    n.allowed.append(r'shared memory zone "pulse" is full')
    body = b"x" * 60000
    codes = []
    for i in range(40):
        codes.append(requests.post(n.url("/pub/fill%d" % (i % 3)),
                                   data=body).status_code)
        if codes[-1] == 507:
            break
    assert codes[-1] == 507, codes
    assert set(codes[:-1]) == {202}
    # more failures do not log more alerts
    for _ in range(5):
        assert requests.post(n.url("/pub/fill0"), data=body).status_code \
            == 507
    alerts = [l for l in n.log().splitlines() if "is full" in l]
    assert len(alerts) == 1, alerts
    assert "[alert]" in alerts[0]
    assert "raise pulse_shared_memory_size" in alerts[0]
    # small messages and subscribers still work meanwhile
    s = sse(n.url("/sub/other"))
    # once the 2 s messages expire, big publishes succeed again
    time.sleep(2.5)
    assert requests.post(n.url("/pub/fill0"), data=body).status_code == 202
    requests.post(n.url("/pub/other"), data="alive")
    s.read_until(lambda b: b"data: alive\n\n" in b)
    s.close()
    assert len(n.worker_pids()) == 2
