"""Pulse behind a front nginx, configured by conf.d/pulse-proxy.conf.example
as docs/operations.md gives it: EventSource and WebSocket (nchan frames and
pulse.v1) pass through, each event reaches the browser as it is published,
a resume with Last-Event-ID works through the proxy, and the proxy keeps
its upstream connections alive.

Run with -s for the added latency of the proxy (not asserted: figures for
docs/operations.md, not a timed test)."""

import os
import re
import statistics
import time

import pytest
import requests

from clients import Stream, parse_sse, sse
from wsclient import WsClient

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "conf.d", "pulse-proxy.conf.example")

PULSE_CONFIG = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.+)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length 100;
    }
    location ~ ^/sub/(.+)$ {
        pulse_subscriber; pulse_channel_id $1;
        # for fronts that buffer (docs/operations.md)
        add_header X-Accel-Buffering no;
    }
    location = /ws { pulse_subscriber websocket; }
}
"""

def front_config(pulse_port):
    with open(EXAMPLE) as f:
        conf = f.read()
    assert "server 127.0.0.1:8080;" in conf and "listen 80;" in conf
    conf = conf.replace("server 127.0.0.1:8080;",
                        "server 127.0.0.1:%d;" % pulse_port)
    return conf.replace("listen 80;", "listen 127.0.0.1:{port};")


@pytest.fixture(scope="module")
def servers(nginx_factory):
    pulse = nginx_factory(PULSE_CONFIG)
    front = nginx_factory(front_config(pulse.port), workers=1)
    return pulse, front


_n = [0]


def chan():
    _n[0] += 1
    return "proxied-%d-%d" % (os.getpid(), _n[0])


def publish(pulse, ch, data):
    r = requests.post(pulse.url("/pub/" + ch), data=data)
    assert r.status_code in (201, 202), r.text
    return r


def wait_subscribed(pulse, ch):
    deadline = time.monotonic() + 5
    while not re.search(r"subscribers: 1\b",
                        requests.get(pulse.url("/pub/" + ch)).text):
        assert time.monotonic() < deadline, "subscriber never joined"
        time.sleep(0.02)


def sse_latencies(pulse, url, ch, count=30):
    """Publishes one message at a time, each after the last one arrived;
    returns the seconds from each publish to its arrival."""
    s = sse(url)
    out = []
    try:
        for i in range(count):
            t0 = time.monotonic()
            publish(pulse, ch, "m%d" % i)
            s.read_until(lambda b, i=i: ("data: m%d\n\n" % i).encode() in b,
                         timeout=5)
            out.append(time.monotonic() - t0)
    finally:
        s.close()
    return out


def test_eventsource_through_the_proxy_gets_each_event_as_published(servers):
    pulse, front = servers
    ch = chan()
    proxied = sse_latencies(pulse, front.url("/sub/" + ch), ch)
    direct = sse_latencies(pulse, pulse.url("/sub/" + ch), ch)
    print("\nEventSource publish-to-receive p50: direct %.2f ms, through "
          "the proxy %.2f ms" % (statistics.median(direct) * 1e3,
                                 statistics.median(proxied) * 1e3))


def test_x_accel_buffering_goes_to_the_front_not_the_browser(servers):
    """add_header reaches a Pulse stream's response head; an nginx front
    acts on X-Accel-Buffering and does not pass it on."""
    pulse, front = servers
    ch = chan()
    direct = sse(pulse.url("/sub/" + ch))
    assert direct.head().header("X-Accel-Buffering") == "no"
    direct.close()
    proxied = sse(front.url("/sub/" + ch))
    assert proxied.head().status == 200
    assert proxied.head().header("X-Accel-Buffering") is None
    assert proxied.head().header("Content-Type") == "text/event-stream; charset=utf-8"
    proxied.close()


def test_resume_with_last_event_id_through_the_proxy(servers):
    pulse, front = servers
    ch = chan()
    s = sse(front.url("/sub/" + ch))
    publish(pulse, ch, "first")
    body = s.read_until(lambda b: b"data: first\n\n" in b)
    s.close()
    last = [e for e in parse_sse(body) if "data" in e][-1]["id"]
    publish(pulse, ch, "missed-1")
    publish(pulse, ch, "missed-2")
    s = sse(front.url("/sub/" + ch), {"Last-Event-ID": last})
    body = s.read_until(lambda b: b"data: missed-2\n\n" in b)
    s.close()
    assert [e["data"] for e in parse_sse(body) if "data" in e] == [
        "missed-1", "missed-2"]


def test_websocket_through_the_proxy(servers):
    pulse, front = servers
    ch = chan()
    c = WsClient(front.port, "/sub/" + ch)
    wait_subscribed(pulse, ch)
    publish(pulse, ch, "over ws")
    assert c.recv_data().payload == b"over ws"
    c.close()


def test_pulse_v1_through_the_proxy_with_resume(servers):
    pulse, front = servers
    ch = chan()
    c = WsClient(front.port, "/ws", protocols="pulse.v1")
    assert c.protocol == "pulse.v1"
    c.send_json({"type": "subscribe", "channel": ch, "id": 1})
    assert c.recv_json() == {"type": "subscribed", "id": 1, "channel": ch}
    publish(pulse, ch, "live")
    m = c.recv_json()
    assert (m["type"], m["data"]) == ("message", "live")
    c.close()
    publish(pulse, ch, "while away")
    c = WsClient(front.port, "/ws", protocols="pulse.v1")
    c.send_json({"type": "subscribe", "channel": ch, "id": 2,
                 "last_event_id": m["id"]})
    assert c.recv_json()["type"] == "subscribed"
    m = c.recv_json()
    assert (m["type"], m["data"]) == ("message", "while away")
    c.close()


def test_the_proxy_reuses_its_upstream_connections(servers):
    """A finished response (a long-poll answered) leaves its upstream
    connection open for the next request: keepalive 32 and an empty
    Connection header for requests that are not upgrades."""
    pulse, front = servers
    for i in range(10):
        ch = chan()
        s = Stream(front.url("/sub/" + ch))
        wait_subscribed(pulse, ch)
        publish(pulse, ch, "k%d" % i)
        s.read_until(lambda b, i=i: ("k%d" % i).encode() in b)
        assert s.head().status == 200
        s.close()
    time.sleep(0.2)
    # one front worker, one request at a time: one connection, reused
    assert sum(pulse.connections_per_worker().values()) == 1
