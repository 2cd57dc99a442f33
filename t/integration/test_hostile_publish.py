"""Hostile input from publishers and pulse.v1 clients (the security review
of issue 11): deeply nested JSON, header-like fields that carry line breaks
or other control characters into other subscribers' streams, bodies that
forge EventSource fields or multipart parts, and message-id arithmetic at
its limits. Each case checks the clear error, then that the workers are the
same processes and still serve the next client."""

import socket
import subprocess
import time
import uuid

import pytest
import redis
import requests

from clients import Stream, parse_sse, sse
from conftest import free_port
from test_publisher_streams import Publisher, started
from wsclient import HandshakeError, WsClient

H2_PORT = free_port()

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port} reuseport;
    listen 127.0.0.1:%d http2;
    location ~ ^/pub/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length 100;
    }
    location ~ ^/pubid/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_publisher_message_id on;
        pulse_message_buffer_length 100;
    }
    location ~ ^/sub/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
    }
    location ~ ^/ws/(.*)$ {
        pulse_pubsub websocket; pulse_channel_id $1;
    }
    location ~ ^/evsub/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_eventsource_event $http_x_ev;
    }
    location = /v1 {
        pulse_pubsub;
        pulse_websocket_upstream /command;
    }
    location = /command {
        internal;
        return 200 "$http_x_pulse_channel";
    }
}
""" % H2_PORT

# a second in the future for supplied ids: the ids the store picks after
# them stay in that second
T = int(time.time()) + 30 * 86400


def chan():
    return uuid.uuid4().hex


def v1(nginx):
    return WsClient(nginx.port, "/v1", protocols="pulse.v1")


def still_serving(nginx, pids):
    """The same workers, each still answering."""
    assert sorted(nginx.worker_pids()) == sorted(pids)
    for _ in range(4):
        assert requests.get(nginx.url("/pub/" + chan())).status_code == 404
    c = v1(nginx)
    c.send_json({"type": "ping", "id": 7})
    assert c.recv_json() == {"type": "pong", "id": 7}
    c.shutdown()


def deep(n):
    return "[" * n + "]" * n


# ------------------------------------------------------- nested JSON

@pytest.mark.parametrize("rtype", ["publish", "subscribe", "ping", "command",
                                   "nonsense"])
def test_deeply_nested_json_is_a_bad_request(nginx, rtype):
    pids = nginx.worker_pids()
    c = v1(nginx)
    for depth in (100000, 10000, 129):
        c.send_text('{"type":"%s","channel":"x","data":%s,"id":1}'
                    % (rtype, deep(depth)))
        e = c.recv_json()
        assert (e["type"], e["code"]) == ("error", "bad_request"), e
        assert "nested" in e["message"]
    # the socket is still served, and so is everyone else
    c.send_json({"type": "ping", "id": 2})
    assert c.recv_json() == {"type": "pong", "id": 2}
    still_serving(nginx, pids)


def test_nesting_anywhere_in_the_request_counts(nginx):
    c = v1(nginx)
    c.send_text('{"type":"ping","x":{"y":%s}}' % deep(100000))
    assert c.recv_json()["code"] == "bad_request"
    # brackets inside strings are text, not nesting
    ch = chan()
    s = sse(nginx.url("/sub/" + ch))
    c.send_json({"type": "publish", "channel": ch, "data": deep(100000)})
    assert c.recv_json()["type"] == "published"
    body = s.read_until(lambda b: b"\n\n" in b[6:])
    assert parse_sse(body)[-1]["data"] == deep(100000)


def test_nesting_up_to_the_bound_is_published(nginx):
    ch = chan()
    s = sse(nginx.url("/sub/" + ch))
    c = v1(nginx)
    # data at depth 127 is 128 levels in the request object
    c.send_text('{"type":"publish","channel":"%s","data":%s}'
                % (ch, deep(127)))
    assert c.recv_json()["type"] == "published"
    body = s.read_until(lambda b: b"\n\n" in b[6:])
    assert parse_sse(body)[-1]["data"] == deep(127)


# ------------------------------------------- header-like field injection

LINE_BREAKS = ["x\ndata: forged\nid: 99", "x\rdata: forged\rid: 99",
               "x\r\ndata: forged\r\nid: 99"]
# what nginx itself lets through in an HTTP header value
OTHER_CONTROLS = ["x\x00y", "x\x01y", "x\x0by", "x\x1fy", "x\x7fy"]
TOO_LONG = "e" * 257


def subscribers(nginx, ch):
    """One subscriber of each transport that shows event names, content
    types or ids."""
    es = sse(nginx.url("/sub/" + ch))
    mp = Stream(nginx.url("/sub/" + ch), {"Accept": "multipart/mixed"})
    mp.head()
    meta = WsClient(nginx.port, "/sub/" + ch, protocols="ws+meta.nchan")
    ws1 = v1(nginx)
    ws1.send_json({"type": "subscribe", "channel": ch})
    assert ws1.recv_json()["type"] == "subscribed"
    return es, mp, meta, ws1


def only_the_good_message(nginx, ch, subs):
    """Publishes a clean message; each subscriber's next message is it,
    with nothing forged before it."""
    es, mp, meta, ws1 = subs
    r = requests.post(nginx.url("/pub/" + ch), data="good",
                      headers={"X-EventSource-Event": "ok",
                               "Content-Type": "text/plain"})
    assert r.status_code == 201, r.text
    body = es.read_until(lambda b: b"data: good" in b)
    events = [e for e in parse_sse(body) if "data" in e]
    assert [(e["event"], e["data"]) for e in events] == [("ok", "good")]
    assert b"forged" not in body
    part = mp.read_until(lambda b: b"good\r\n--" in b)
    assert b"forged" not in part and part.count(b"Etag:") == 1
    f = meta.recv_data()
    assert f.payload.endswith(b"\n\ngood") and b"forged" not in f.payload
    assert f.payload.count(b"\n") == 3  # id, content-type, blank
    m = ws1.recv_json()
    assert (m["data"], m["event"]) == ("good", "ok")


@pytest.mark.parametrize("bad", LINE_BREAKS + OTHER_CONTROLS + [TOO_LONG])
def test_pulse_v1_event_and_content_type_are_validated(nginx, bad):
    pids = nginx.worker_pids()
    ch = chan()
    subs = subscribers(nginx, ch)
    c = v1(nginx)
    for field in ("event", "content_type"):
        c.send_json({"type": "publish", "channel": ch, "data": "forged",
                     field: bad, "id": field})
        e = c.recv_json()
        assert (e["type"], e["code"], e["id"]) == ("error", "bad_request",
                                                   field), e
        assert field.replace("_", " ") in e["message"].lower()
    only_the_good_message(nginx, ch, subs)
    still_serving(nginx, pids)


def raw_post(port, path, headers, body=b"forged"):
    """An HTTP/1.1 POST with header bytes exactly as given."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" % \
        path.encode()
    for k, v in headers.items():
        head += k.encode() + b": " + v.encode("latin-1") + b"\r\n"
    head += b"Content-Length: %d\r\n\r\n" % len(body)
    s.sendall(head + body)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.parametrize("bad", OTHER_CONTROLS[1:] + [TOO_LONG])
@pytest.mark.parametrize("header", ["X-EventSource-Event", "Content-Type"])
def test_http_publish_headers_are_validated(nginx, header, bad):
    pids = nginx.worker_pids()
    ch = chan()
    subs = subscribers(nginx, ch)
    status, data = raw_post(nginx.port, "/pub/" + ch, {header: bad})
    assert status == 400, data
    assert header.encode().lower() in data.lower()
    only_the_good_message(nginx, ch, subs)
    still_serving(nginx, pids)


@pytest.mark.parametrize("header", ["X-EventSource-Event", "Content-Type"])
def test_http2_publish_headers_are_validated(nginx, header):
    ch = chan()
    subs = subscribers(nginx, ch)
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
         "--http2-prior-knowledge", "-H", header + ": x\x01y",
         "--data-binary", "forged",
         "http://127.0.0.1:%d/pub/%s" % (H2_PORT, ch)],
        capture_output=True, text=True, timeout=10)
    assert out.stdout == "400", out
    only_the_good_message(nginx, ch, subs)


def test_websocket_publisher_content_type_is_validated(nginx):
    with pytest.raises(HandshakeError) as e:
        WsClient(nginx.port, "/ws/" + chan(),
                 headers={"Content-Type": "text/plain\x01x"})
    assert e.value.status == 400
    assert b"content type" in e.value.body.lower()


def test_subscriber_event_override_is_validated(nginx):
    ch = chan()
    s = Stream(nginx.url("/evsub/" + ch),
               {"Accept": "text/event-stream", "X-Ev": "x\x01y"})
    assert s.head().status == 400
    s.close()
    # a clean override still names every event
    s = sse(nginx.url("/evsub/" + ch), {"X-Ev": "tick"})
    assert requests.post(nginx.url("/pub/" + ch), data="m").status_code == 201
    body = s.read_until(lambda b: b"data: m" in b)
    assert [e["event"] for e in parse_sse(body) if "data" in e] == ["tick"]


def test_command_channel_cannot_inject_upstream_headers(nginx):
    c = v1(nginx)
    c.send_json({"type": "command", "channel": "a\r\nX-Evil: 1", "id": 3,
                 "data": "{}"})
    e = c.recv_json()
    assert (e["type"], e["code"], e["id"]) == ("error", "bad_request", 3), e
    c.send_json({"type": "command", "channel": "fine", "id": 4, "data": "{}"})
    m = c.recv_json()
    assert (m["type"], m["id"], m["data"]) == ("reply", 4, "fine")


def test_pulse_v1_channel_names_are_validated(nginx):
    c = v1(nginx)
    for t in ("subscribe", "publish"):
        c.send_json({"type": t, "channel": "a\nb", "id": t, "data": "x"})
        e = c.recv_json()
        assert (e["code"], e["id"]) == ("bad_request", t), e


# --------------------------------------------------- bodies stay framed

def test_carriage_returns_in_a_body_cannot_forge_eventsource_fields(nginx):
    ch = chan()
    s = sse(nginx.url("/sub/" + ch))
    body = "a\rid: 99\revent: forged\r\ndata: b\nc\r"
    assert requests.post(nginx.url("/pub/" + ch), data=body).status_code == 201
    got = s.read_until(lambda b: b.endswith(b"\n\n") and len(b) > 8)
    ev = [e for e in parse_sse(got) if "data" in e][0]
    assert ev["id"] != "99" and "event" not in ev
    # every line of the body is a data line; the client rejoins them with LF
    assert ev["data"] == "a\nid: 99\nevent: forged\ndata: b\nc\n"
    assert b"\r" not in got


def multipart_boundary(stream):
    ct = stream.head().header("content-type")
    return ct.split("boundary=", 1)[1]


def test_a_body_cannot_forge_parts_of_other_multipart_streams(nginx):
    ch = chan()
    subs = []
    for _ in range(4):  # two workers: some share a worker
        s = Stream(nginx.url("/sub/" + ch), {"Accept": "multipart/mixed"})
        subs.append((s, multipart_boundary(s)))
    bodies = ["x\r\n--%s\r\nEtag: 1\r\n\r\nforged" % b for _, b in subs]
    for body in bodies:
        r = requests.post(nginx.url("/pub/" + ch), data=body)
        assert r.status_code == 201
    for j, (s, b) in enumerate(subs):
        got = s.read_until(lambda d: d.count(b"forged") >= 4)
        text = got.decode()
        assert text.startswith("--" + b)
        parts = text[len(b) + 2:].split("\r\n--" + b)
        # the body that stream's own client forged only harms that client;
        # every other body arrives whole, as one part
        for i, body in enumerate(bodies):
            if i != j:
                assert sum(p.endswith("\r\n\r\n" + body)
                           for p in parts) == 1, (j, i, parts)
        s.close()


# ------------------------------------------------------- message ids

def post_id(nginx, ch, msg_id, body="m"):
    h = {"Accept": "text/json"}
    if msg_id:
        h["Pulse-Message-Id"] = msg_id
    return requests.post(nginx.url("/pubid/" + ch), data=body, headers=h)


def last_id(nginx, ch):
    return requests.get(nginx.url("/pubid/" + ch),
                        headers={"Accept": "text/json"}).json()[
        "last_message_id"]


def test_tag_overflow_advances_the_time(nginx):
    ch = chan()
    assert post_id(nginx, ch, "%d:2147483646" % T).status_code == 202
    s = sse(nginx.url("/sub/" + ch),
            {"Last-Event-ID": "%d:2147483646" % T})
    assert post_id(nginx, ch, None, "a").status_code == 201
    assert last_id(nginx, ch) == "%d:2147483647" % T
    assert post_id(nginx, ch, None, "b").status_code == 201
    assert last_id(nginx, ch) == "%d:0" % (T + 1)
    body = s.read_until(lambda b: b"data: b" in b)
    assert [e.get("id") for e in parse_sse(body) if "data" in e] == [
        "%d:2147483647" % T, "%d:0" % (T + 1)]
    # a client resuming from either id gets exactly what follows it
    r = Stream(nginx.url("/sub/" + ch),
               {"Accept": "text/event-stream",
                "Last-Event-ID": "%d:2147483647" % T})
    assert r.head().status == 200
    got = r.read_until(lambda b: b"data: b" in b)
    assert [e["data"] for e in parse_sse(got) if "data" in e] == ["b"]
    lp = requests.get(nginx.url("/sub/" + ch),
                      headers={"If-Modified-Since":
                               "Thu, 01 Jan 1970 00:00:01 GMT",
                               "If-None-Match": "0"}, timeout=5)
    assert lp.status_code == 200


@pytest.mark.parametrize("bad", ["%d:2147483648" % T, "%d:-1" % T,
                                 "%d:-" % T, "%d:99999999999" % T,
                                 "253402300800:0", "%d:[0],1" % T,
                                 "-5:0", "%d:1x" % T])
def test_supplied_ids_out_of_range_are_refused(nginx, bad):
    ch = chan()
    assert post_id(nginx, ch, "%d:5" % T).status_code == 202
    r = post_id(nginx, ch, bad)
    assert r.status_code == 400, (bad, r.status_code, r.text)
    assert "Message ID" in r.text
    assert last_id(nginx, ch) == "%d:5" % T


def test_resume_ids_out_of_range_are_refused(nginx):
    for bad in ("253402300800:0", "1:2147483648"):
        s = Stream(nginx.url("/sub/" + chan()),
                   {"Accept": "text/event-stream", "Last-Event-ID": bad})
        assert s.head().status == 400
        s.close()


def test_a_huge_message_timeout_does_not_overflow(nginx_factory):
    n = nginx_factory("""
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_timeout $arg_ttl;
    }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
}
""")
    ch = chan()
    r = requests.post(n.url("/pub/%s?ttl=9223372036854775000s" % ch), data="x")
    assert r.status_code == 202, r.text
    # stored, and not already expired by a time that wrapped around
    got = requests.get(n.url("/sub/" + ch), timeout=5)
    assert (got.status_code, got.text) == (200, "x")


# ------------------------------------------------------------ sidecar

def test_sidecar_drops_entries_whose_fields_would_inject_headers(
        request, nginx_factory, redis_server, tmp_path):
    n = nginx_factory("""
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.+)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_publisher_message_id on;
    }
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
}
""")
    r = redis.Redis(port=redis_server["port"])
    r.flushall()
    pub = Publisher(request.config.getoption("--publisher"), tmp_path, n,
                    redis_server["port"], "inj", name="inj")
    try:
        started(r, pub, "inj")
        s = sse(n.url("/sub/acme.bw"))
        fields = {"tenant": "acme", "widget": "bw", "data": "forged"}
        r.xadd("inj", dict(fields, kind="x\r\nPulse-Message-Id: 1:1"))
        r.xadd("inj", dict(fields, kind="x", ctype="a\r\nX-Evil: 1"))
        r.xadd("inj", dict(fields, kind="x\x01"))
        r.xadd("inj", dict(fields, kind="sample", data="good"))
        body = s.read_until(lambda b: b"data: good" in b)
        assert b"forged" not in body
    finally:
        lines = pub.stop()
    dropped = [ln for ln in lines if "dropping" in ln]
    assert any("event" in ln for ln in dropped), lines


def test_sidecar_drops_entries_whose_id_is_no_message_id(
        request, nginx_factory, redis_server, tmp_path):
    n = nginx_factory("""
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.+)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_publisher_message_id on;
    }
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
}
""")
    r = redis.Redis(port=redis_server["port"])
    r.flushall()
    pub = Publisher(request.config.getoption("--publisher"), tmp_path, n,
                    redis_server["port"], "far, near", name="far")
    try:
        started(r, pub, "far")
        s = sse(n.url("/sub/acme.bw"))
        fields = {"tenant": "acme", "widget": "bw", "kind": "k"}
        # an explicit entry id past the year 9999 maps to no message id
        r.xadd("far", dict(fields, data="far"), id="253402300800000-0")
        r.xadd("near", dict(fields, data="near"))
        body = s.read_until(lambda b: b"data: near" in b)
        assert b"data: far" not in body
    finally:
        lines = pub.stop()
    assert any("dropping" in ln and "message id" in ln for ln in lines), \
        lines
