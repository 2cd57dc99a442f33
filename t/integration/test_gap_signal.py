"""pulse_gap_signal: a subscriber that resumes from an id older than the
channel's buffer is told so, on EventSource by an event (no id: line, so
its Last-Event-ID stays its own) and on long-poll by a Pulse-Gap header.
Off, what a client sees is nchan's (compared with the installed nchan)."""

import email.utils
import uuid

import pytest
import requests

from clients import sse

CONF = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length 2;
    }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
    {gap}
}
"""
GAP = """
    location ~ ^/gap/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_gap_signal on;
    }
    location ~ ^/named/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_gap_signal on event=missed;
        pulse_access_control_allow_origin *;
    }
"""


@pytest.fixture(scope="module")
def servers(nginx_factory):
    return {"pulse": nginx_factory(CONF.replace("{gap}", GAP)),
            "nchan": nginx_factory(CONF.replace("{gap}", ""),
                                   flavor="nchan")}


@pytest.fixture(scope="module")
def nginx(servers):
    return servers["pulse"]


def fill(n, count=4):
    """A channel with `count` messages and a buffer of 2; their ids."""
    c = uuid.uuid4().hex
    live = sse(n.url("/sub/" + c))
    assert live.head().status == 200, live.head().status
    for i in range(count):
        assert requests.post(n.url("/pub/" + c), data="m%d" % i,
                             timeout=5).status_code == 201
    body = live.read_until(lambda b: b.count(b"data: m") >= count)
    live.close()
    ids = [l[4:].decode() for l in body.split(b"\n") if l.startswith(b"id: ")]
    assert len(ids) == count
    return c, ids


def lines(body):
    return [l for l in body.split(b"\n") if not l.startswith(b"id: ")]


def test_off_by_default_as_nchan(servers):
    def run(n):
        c, ids = fill(n)
        s = sse(n.url("/sub/" + c), headers={"Last-Event-ID": ids[0]})
        body = s.read_until(lambda b: b.count(b"data: m") >= 2)
        s.close()
        r = requests.get(n.url("/sub/" + c), timeout=5,
                         headers={"If-Modified-Since":
                                  "Thu, 01 Jan 1970 00:00:00 GMT",
                                  "If-None-Match": "0"})
        return lines(body), r.status_code, r.text, "Pulse-Gap" in r.headers
    out = {f: run(n) for f, n in servers.items()}
    assert out["pulse"] == out["nchan"], out
    assert out["pulse"][3] is False


def test_eventsource_gap_event(nginx):
    c, ids = fill(nginx)
    s = sse(nginx.url("/gap/" + c), headers={"Last-Event-ID": ids[0]})
    body = s.read_until(lambda b: b.count(b"data: m") >= 2)
    s.close()
    assert body.split(b"\n\n")[1] == \
        b"event: pulse-gap\ndata: " + ids[0].encode()
    assert b"data: m2" in body and b"data: m3" in body
    # nothing missed: no event
    s = sse(nginx.url("/gap/" + c), headers={"Last-Event-ID": ids[2]})
    body = s.read_until(lambda b: b"data: m3" in b)
    s.close()
    assert b"pulse-gap" not in body
    # named by the directive
    s = sse(nginx.url("/named/" + c), headers={"Last-Event-ID": ids[0]})
    body = s.read_until(lambda b: b"data: m3" in b)
    s.close()
    assert b"event: missed\ndata: " + ids[0].encode() + b"\n\n" in body
    # after m1, which the buffer no longer holds, nothing is missing: m2
    # and m3 are there
    s = sse(nginx.url("/gap/" + c), headers={"Last-Event-ID": ids[1]})
    body = s.read_until(lambda b: b"data: m3" in b)
    s.close()
    assert b"pulse-gap" not in body


def test_longpoll_gap_header(nginx):
    c, ids = fill(nginx)
    time_part, tag = ids[0].split(":")
    old = {"If-Modified-Since": email.utils.formatdate(
        int(time_part), usegmt=True), "If-None-Match": tag}
    r = requests.get(nginx.url("/gap/" + c), headers=old, timeout=5)
    assert r.status_code == 200 and r.text == "m2"
    assert r.headers["Pulse-Gap"] == "1"
    # the next poll, from what it got, is exact
    nxt = {"If-Modified-Since": r.headers["Last-Modified"],
           "If-None-Match": r.headers["Etag"]}
    r = requests.get(nginx.url("/gap/" + c), headers=nxt, timeout=5)
    assert r.text == "m3" and "Pulse-Gap" not in r.headers
    # a browser may read it
    r = requests.get(nginx.url("/named/" + c),
                     headers=dict(old, Origin="http://app"), timeout=5)
    assert r.headers["Pulse-Gap"] == "1"
    assert "Pulse-Gap" in r.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("arg", ["maybe", "on event=", "on name=x",
                                 "off event=x"])
def test_bad_directive_is_a_clear_error(nginx_factory, arg):
    n = nginx_factory("server { listen 127.0.0.1:{port}; location /s { "
                      "pulse_subscriber; pulse_channel_id x; "
                      "pulse_gap_signal %s; } }" % arg, start=False)
    out = n.test_config()
    assert out.returncode != 0
    assert "pulse_gap_signal" in out.stderr, out.stderr
