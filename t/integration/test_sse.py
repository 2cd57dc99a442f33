"""EventSource subscribers: framing, resume, first message, pings, timeout,
HTTP/2, fan-out over both workers, and a 10,000-message burst."""

import subprocess
import threading
import time

import pytest
import requests

from clients import parse_sse, sse

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port} reuseport;
    location ~ ^/pub/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length 20;
    }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
    location ~ ^/newest/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_first_message newest;
    }
    location ~ ^/second/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_first_message 2;
    }
    location ~ ^/last2/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_first_message -2;
    }
    location ~ ^/ping/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_eventsource_ping_interval 1;
        pulse_eventsource_ping_comment "keepalive";
        pulse_eventsource_ping_data "{}";
    }
    location ~ ^/timeout/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_timeout 1;
    }
    location ~ ^/existing/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscribe_existing_channels_only on;
    }
    location ~ ^/max1/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_max_channel_subscribers 1;
    }
    location ~ ^/smallbuf/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_max_buffered 1k;
    }
    location ~ ^/burst/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length 10;
    }
}
server {
    listen 127.0.0.1:{port2} http2;
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
}
"""


@pytest.fixture(scope="module")
def nginx(nginx_factory):
    from conftest import free_port
    port2 = free_port()
    n = nginx_factory(NGINX_CONFIG.replace("{port2}", str(port2)))
    n.port2 = port2
    return n


def pub(nginx, chan, body, **headers):
    r = requests.post(nginx.url("/pub/" + chan), data=body, headers=headers)
    assert r.status_code in (201, 202), r.text
    return r.text.rsplit("last message id: ", 1)[1]


def test_stream_opens_with_hi_and_frames_messages(nginx):
    s = sse(nginx.url("/sub/frame"))
    try:
        assert s.response.status == 200
        assert s.response.header("content-type") == \
            "text/event-stream; charset=utf-8"
        assert s.response.header("content-length") is None
        s.read_until(lambda b: b == b": hi\n\n")
        mid = pub(nginx, "frame", "line one\nline two\n",
                  **{"X-EventSource-Event": "tick"})
        body = s.read_until(lambda b: b.endswith(b"\n\n") and b"data" in b)
        assert body == (b": hi\n\nevent: tick\nid: " + mid.encode()
                        + b"\ndata: line one\ndata: line two\ndata: \n\n")
    finally:
        s.close()


def test_resume_by_last_event_id_and_query_arg(nginx):
    ids = [pub(nginx, "resume", "m%d" % i) for i in range(5)]
    for headers, url in (({"Last-Event-ID": ids[1]}, "/sub/resume"),
                         ({}, "/sub/resume?last_event_id=" + ids[1])):
        s = sse(nginx.url(url), headers)
        try:
            body = s.read_until(lambda b: b"data: m4\n\n" in b)
            evs = [e for e in parse_sse(body) if "data" in e]
            assert [e["data"] for e in evs] == ["m2", "m3", "m4"]
            assert [e["id"] for e in evs] == ids[2:]
        finally:
            s.close()


def test_resume_after_disconnect_loses_nothing_and_repeats_nothing(nginx):
    got = []
    last = None
    sent = 0
    for round_ in range(4):
        h = {"Last-Event-ID": last} if last else {}
        s = sse(nginx.url("/sub/reconnect"), h)
        for i in range(3):
            pub(nginx, "reconnect", "r%d" % sent)
            sent += 1
        body = s.read_until(
            lambda b: ("data: r%d\n" % (sent - 1)).encode() in b)
        s.close()
        # published while disconnected
        pub(nginx, "reconnect", "r%d" % sent)
        sent += 1
        evs = [e for e in parse_sse(body) if "data" in e]
        got += [e["data"] for e in evs]
        last = evs[-1]["id"]
    s = sse(nginx.url("/sub/reconnect"), {"Last-Event-ID": last})
    body = s.read_until(lambda b: ("data: r%d\n" % (sent - 1)).encode() in b)
    s.close()
    got += [e["data"] for e in parse_sse(body) if "data" in e]
    assert got == ["r%d" % i for i in range(sent)]


def test_first_message_modes(nginx):
    for i in range(4):
        pub(nginx, "first", "f%d" % i)

    def datas(path, want_last=True):
        s = sse(nginx.url(path))
        try:
            if want_last:
                body = s.read_until(lambda b: b"data: f3\n\n" in b)
            else:
                pub(nginx, "first", "f-new")
                body = s.read_until(lambda b: b"data: f-new\n\n" in b)
            return [e["data"] for e in parse_sse(body) if "data" in e]
        finally:
            s.close()
    assert datas("/sub/first") == ["f0", "f1", "f2", "f3"]
    assert datas("/second/first") == ["f1", "f2", "f3"]
    assert datas("/last2/first") == ["f2", "f3"]
    assert datas("/newest/first", want_last=False) == ["f-new"]


def test_malformed_ids_are_400_and_server_stays_healthy(nginx):
    for h, q in (({"Last-Event-ID": "garbage"}, ""),
                 ({}, "?last_event_id=1:2:3"),
                 ({"Last-Event-ID": "x" * 200}, ""),
                 ({"If-None-Match": "nope"}, "")):
        r = requests.get(nginx.url("/sub/bad" + q),
                         headers=dict(h, Accept="text/event-stream"))
        assert r.status_code == 400, (h, q)
        assert r.text.startswith("Message ID invalid")
    s = sse(nginx.url("/sub/bad"))
    pub(nginx, "bad", "still fine")
    s.read_until(lambda b: b"data: still fine\n\n" in b)
    s.close()


def test_pings(nginx):
    s = sse(nginx.url("/ping/p"))
    try:
        body = s.read_until(lambda b: b.count(b"event: ping") >= 2, 5)
        assert b":keepalive\nevent: ping\ndata: {}\n\n" in body
    finally:
        s.close()


def test_subscriber_timeout_ends_stream_with_408_comment(nginx):
    s = sse(nginx.url("/timeout/t"))
    try:
        body = s.read_to_end(5)
        assert body == b": hi\n\n:408: 408 Request Timeout\n\n"
    finally:
        s.close()


def test_existing_channels_only_and_max_subscribers(nginx):
    r = requests.get(nginx.url("/existing/nope"),
                     headers={"Accept": "text/event-stream"})
    assert r.status_code == 404
    pub(nginx, "exists", "x")
    s = sse(nginx.url("/existing/exists"))
    assert s.response.status == 200
    s.close()
    a = sse(nginx.url("/max1/lim"))
    try:
        r = requests.get(nginx.url("/max1/lim"),
                         headers={"Accept": "text/event-stream"})
        assert r.status_code == 403
    finally:
        a.close()


def test_eventsource_over_http2(nginx):
    pub(nginx, "h2", "before")
    p = subprocess.Popen(
        ["curl", "-sN", "--http2-prior-knowledge", "--max-time", "5",
         "-H", "Accept: text/event-stream",
         "http://127.0.0.1:%d/sub/h2" % nginx.port2],
        stdout=subprocess.PIPE)
    out = b""
    try:
        deadline = time.monotonic() + 5
        while b"data: before\n\n" not in out and time.monotonic() < deadline:
            out += p.stdout.read1(4096)
        pub(nginx, "h2", "after")
        while b"data: after\n\n" not in out and time.monotonic() < deadline:
            out += p.stdout.read1(4096)
    finally:
        p.kill()
        p.wait()
    assert out.startswith(b": hi\n\n")
    assert b"data: before\n\n" in out and b"data: after\n\n" in out


def test_fanout_over_both_workers(nginx):
    """Enough connections that both workers hold some; a publish through
    either worker reaches all of them."""
    subs = [sse(nginx.url("/sub/fan")) for _ in range(60)]
    try:
        per_worker = nginx.connections_per_worker()
        assert len(per_worker) == 2, per_worker
        assert all(c >= 5 for c in per_worker.values()), per_worker
        for i in range(10):
            pub(nginx, "fan", "msg%d" % i)
        for s in subs:
            body = s.read_until(lambda b: b"data: msg9\n\n" in b)
            assert [e["data"] for e in parse_sse(body) if "data" in e] == \
                ["msg%d" % i for i in range(10)]
        info = requests.get(nginx.url("/pub/fan"),
                            headers={"Accept": "text/json"}).json()
        assert info["subscribers"] == 60
    finally:
        for s in subs:
            s.close()


def test_burst_of_10000_in_order_with_small_buffer(nginx):
    """A subscriber that keeps up gets every message of a burst far longer
    than the buffer (10), in order, whichever worker it is on."""
    subs = [sse(nginx.url("/sub/burst"), timeout=60) for _ in range(4)]
    n = 10000
    errors = []

    def publisher():
        sess = requests.Session()
        try:
            for i in range(n):
                r = sess.post(nginx.url("/burst/burst"), data="b%d" % i)
                if r.status_code not in (201, 202):
                    errors.append(r.status_code)
                    return
        except Exception as e:  # reported below
            errors.append(e)
    t = threading.Thread(target=publisher)
    t.start()
    try:
        last = ("data: b%d\n\n" % (n - 1)).encode()
        for s in subs:
            body = s.read_until(lambda b: b.endswith(last), 120)
            datas = [e["data"] for e in parse_sse(body) if "data" in e]
            assert datas == ["b%d" % i for i in range(n)]
    finally:
        t.join()
        for s in subs:
            s.close()
    assert not errors


def test_catch_up_larger_than_the_send_buffer_resumes_without_gaps(nginx):
    """A catch-up that does not fit pulse_subscriber_max_buffered ends the
    stream after what fits; the client resumes from its last id and, over
    a few reconnects, gets every message exactly once."""
    for i in range(20):
        pub(nginx, "big", "%02d-" % i + "x" * 200)
    got = []
    last = None
    for _ in range(20):
        h = {"Last-Event-ID": last} if last else {}
        s = sse(nginx.url("/smallbuf/big"), h)
        try:
            body = s.read_to_end(2)
            ended = True
        except TimeoutError:
            body = s.body
            ended = False
        s.close()
        evs = [e for e in parse_sse(body) if "data" in e]
        got += [e["data"][:2] for e in evs]
        if evs:
            last = evs[-1]["id"]
        if not ended:
            break  # caught up: the stream stays open, waiting for news
    assert got == ["%02d" % i for i in range(20)]
