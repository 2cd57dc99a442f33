"""Per-subscriber pacing (docs/pacing.md) against the real module: a storm
of keyed publishes to a throttled subscriber on EventSource and on both
WebSocket framings arrives as a few batches holding the latest value of
every key; a resume from any id seen is exact; pulse.v1 switches modes on
an open socket and fetches in manual mode; a stalled subscriber meets its
queue's bound with its policy while the others keep receiving; bad asks
are refused with a clear error."""

import socket
import threading
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from clients import parse_sse, sse
from conftest import wait_for
from wsclient import HandshakeError, WsClient

CONF = """
server {
    listen 127.0.0.1:{port} reuseport;
    location ~ ^/pub/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length 2000;
    }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
    location = /v1 {
        pulse_pubsub;
        pulse_message_buffer_length 2000;
        pulse_subscriber_throttle_min 50ms;
        pulse_subscriber_throttle_max 10s;
    }
    location ~ ^/slow/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_max_buffered 64k;
        pulse_subscriber_queue messages=20 overflow=drop-oldest;
        pulse_gap_signal on;
    }
    location ~ ^/strict/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_throttle 1s;
        pulse_subscriber_queue messages=5 overflow=close;
    }
    location ~ ^/paced/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_throttle 200ms;
    }
    location = /metrics { pulse_metrics; }
}
"""

KEYS = 10


@pytest.fixture(scope="module")
def nginx(nginx_factory):
    return nginx_factory(CONF)


def storm(n, channel, total=1000, seconds=1.0):
    """`total` keyed publishes over KEYS keys in `seconds`, in ten bursts
    through one pulse.v1 socket. Returns [(key, value, id)] in publish
    order and the time the storm took."""
    pub = WsClient(n.port, "/v1", protocols="pulse.v1")
    sent = []
    start = time.monotonic()
    per = total // 10
    for burst in range(10):
        wait = start + burst * seconds / 10 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        for i in range(burst * per, (burst + 1) * per):
            key = "k%d" % (i % KEYS)
            pub.send_json({"type": "publish", "channel": channel,
                           "key": key, "data": "%s=%d" % (key, i)})
        for i in range(per):
            r = pub.recv_json()
            assert r["type"] == "published", r
            sent.append(r["message_id"])
    took = time.monotonic() - start
    pub.close()
    values = [("k%d" % (i % KEYS), i, sent[i]) for i in range(total)]
    return values, took


def batches(arrivals, quiet=0.1):
    """Groups (time, item) arrivals separated by more than `quiet` s."""
    out = []
    last = None
    for t, item in arrivals:
        if last is None or t - last > quiet:
            out.append([])
        out[-1].append(item)
        last = t
    return out


def check_storm(groups, values, took):
    """At most one write per 250 ms, each with at most one message per
    key, ids rising, and the last value of every key delivered."""
    assert len(groups) <= 2 + int(took / 0.25), (len(groups), took)
    if took < 0.95:
        assert len(groups) <= 5, [len(g) for g in groups]
    order = {v[2]: i for i, v in enumerate(values)}
    seen = []
    for g in groups:
        keys = [data.split("=")[0] for data, _ in g]
        assert len(keys) == len(set(keys)), g
        seen += [order[mid] for _, mid in g]
    assert seen == sorted(seen)
    final = {}
    for key, i, _ in values:
        final[key] = "%s=%d" % (key, i)
    got = {}
    for g in groups:
        for data, _ in g:
            got[data.split("=")[0]] = data
    assert got == final
    # a batch holds the latest value of every key it names at that point
    for g in groups:
        for data, mid in g:
            key = data.split("=")[0]
            later = [v for v in values if v[0] == key and order[v[2]] > order[mid]
                     and order[v[2]] < order[g[-1][1]]]
            assert not later, (data, later[:1])


def read_sse_arrivals(s, want, timeout=10.0):
    """(arrival time, (data, id)) for events until `want(events)`."""
    arrivals = []
    deadline = time.monotonic() + timeout
    s.sock.settimeout(0.05)
    while time.monotonic() < deadline:
        try:
            chunk = s.sock.recv(65536)
        except socket.timeout:
            chunk = None
        if chunk == b"":
            break
        if chunk:
            s.buf += chunk
            s._decode()
            now = time.monotonic()
            events = [e for e in parse_sse(s.body) if "data" in e]
            for e in events[len(arrivals):]:
                arrivals.append((now, (e["data"], e.get("id"))))
            if want([a[1] for a in arrivals]):
                return arrivals
    return arrivals


def final_seen(values):
    last = {}
    for key, i, _ in values:
        last[key] = "%s=%d" % (key, i)

    def done(items):
        have = {}
        for data, _ in items:
            have[data.split("=")[0]] = data
        return have == last
    return done


def test_eventsource_storm_arrives_in_throttled_batches(nginx):
    c = uuid.uuid4().hex
    s = sse(nginx.url("/sub/%s?throttle=250ms" % c))
    out = {}

    def run():
        out["values"], out["took"] = storm(nginx, c)
    t = threading.Thread(target=run)
    t.start()
    arrivals = read_sse_arrivals(s, lambda items: "values" in out
                                 and final_seen(out["values"])(items))
    t.join()
    s.close()
    check_storm(batches(arrivals), out["values"], out["took"])
    # what it skipped is counted (each worker reports within a second)
    skipped = len(out["values"]) - len(arrivals)

    def conflated():
        text = requests.get(nginx.url("/metrics"), timeout=5).text
        for fam in text_string_to_metric_families(text):
            if fam.name == "pulse_messages_conflated":
                return sum(x.value for x in fam.samples)
        return 0
    wait_for(lambda: conflated() >= skipped, 5, "conflations counted")


def test_resume_after_a_conflated_stream_is_exact(nginx):
    c = uuid.uuid4().hex
    s = sse(nginx.url("/sub/%s?throttle=250ms" % c))
    values, _ = storm(nginx, c, total=200, seconds=0.5)
    arrivals = read_sse_arrivals(s, final_seen(values))
    s.close()
    seen = [mid for _, (_, mid) in arrivals]
    ids = [v[2] for v in values]
    for mid in (seen[0], seen[len(seen) // 2], seen[-2]):
        r = sse(nginx.url("/sub/" + c), headers={"Last-Event-ID": mid})
        after = ids[ids.index(mid) + 1:]
        body = r.read_until(lambda b: b.count(b"data: ") >= len(after))
        r.close()
        got = [e["id"] for e in parse_sse(body) if "data" in e]
        assert got == after


def test_websocket_framings_are_paced(nginx):
    c = uuid.uuid4().hex
    plain = WsClient(nginx.port, "/sub/%s?throttle=250ms" % c)
    meta = WsClient(nginx.port, "/sub/%s?throttle=250ms" % c,
                    protocols="ws+meta.nchan")
    values, took = storm(nginx, c)
    done = final_seen(values)
    ids = {v[2]: v for v in values}
    for client, framing in ((plain, "plain"), (meta, "meta")):
        arrivals = []
        while not done([a[1] for a in arrivals]):
            f = client.recv_frame(timeout=5)
            payload = f.payload.decode()
            if framing == "meta":
                head, _, data = payload.partition("\n\n")
                mid = [l[4:] for l in head.split("\n") if l.startswith("id: ")][0]
            else:
                data = payload
                mid = next(v[2] for v in values
                           if "%s=%d" % (v[0], v[1]) == data)
            assert mid in ids
            arrivals.append((time.monotonic(), (data, mid)))
        client.close()
        # frames were read after the storm, so arrival times say nothing:
        # a write every 250 ms carries at most one message per key
        writes = 2 + int(took / 0.25)
        assert len(arrivals) <= writes * KEYS, (len(arrivals), took)
        seen = [values.index(ids[mid]) for _, (_, mid) in arrivals]
        assert seen == sorted(seen)


def test_pulse_v1_modes_change_on_an_open_socket(nginx):
    c = uuid.uuid4().hex
    ws = WsClient(nginx.port, "/v1", protocols="pulse.v1")
    ws.send_json({"type": "subscribe", "channel": c, "mode": "manual"})
    assert ws.recv_json() == {"type": "subscribed", "channel": c,
                              "pace": "manual"}
    pub = WsClient(nginx.port, "/v1", protocols="pulse.v1")
    for i in range(5):
        pub.send_json({"type": "publish", "channel": c, "key": "cpu",
                       "data": str(i)})
        assert pub.recv_json()["type"] == "published"
    pub.send_json({"type": "publish", "channel": c, "data": "note"})
    assert pub.recv_json()["type"] == "published"
    with pytest.raises(socket.timeout):
        ws.recv_frame(timeout=0.3)
    ws.send_json({"type": "fetch", "channel": c, "id": 7})
    assert [ws.recv_json()["data"] for _ in range(2)] == ["4", "note"]
    assert ws.recv_json() == {"type": "fetched", "id": 7, "channel": c,
                              "messages": 2}
    # to a throttle: the location's minimum bounds it
    ws.send_json({"type": "pace", "channel": c, "throttle": "1ms"})
    assert ws.recv_json()["pace"] == "throttle=50ms"
    ws.send_json({"type": "pace", "channel": c, "mode": "live"})
    assert ws.recv_json()["pace"] == "throttle=50ms"
    for i in range(3):
        pub.send_json({"type": "publish", "channel": c, "key": "cpu",
                       "data": "x%d" % i})
        assert pub.recv_json()["type"] == "published"
    got = []
    while not got or got[-1] != "x2":
        got.append(ws.recv_json()["data"])
    assert len(got) <= 3 and got[-1] == "x2"
    # bad asks: an error frame, the socket stays
    for bad in ({"type": "pace", "channel": c, "throttle": "soon"},
                {"type": "pace", "channel": c},
                {"type": "pace", "channel": c, "throttle": "1s",
                 "interval": "1s"},
                {"type": "subscribe", "channel": "x", "mode": "sometimes"},
                {"type": "fetch", "channel": "nope"}):
        ws.send_json(bad)
        r = ws.recv_json()
        assert r["type"] == "error" and r["code"] in (
            "bad_request", "not_subscribed"), r
    ws.send_json({"type": "ping"})
    assert ws.recv_json()["type"] == "pong"
    ws.close()
    pub.close()


def test_interval_mode_writes_on_its_cadence(nginx):
    c = uuid.uuid4().hex
    s = sse(nginx.url("/sub/%s?interval=1s" % c))
    start = time.monotonic()
    for i in range(5):
        requests.post(nginx.url("/pub/" + c), data="v%d" % i,
                      headers={"Pulse-Key": "temp"}, timeout=5)
    body = s.read_until(lambda b: b"data: v4" in b, timeout=5)
    waited = time.monotonic() - start
    s.close()
    assert [e["data"] for e in parse_sse(body) if "data" in e] == ["v4"]
    assert waited >= 0.5  # not at once: at the cadence's tick


def test_location_default_throttle(nginx):
    c = uuid.uuid4().hex
    s = sse(nginx.url("/paced/" + c))
    for i in range(20):
        requests.post(nginx.url("/pub/" + c), data="v%d" % i,
                      headers={"Pulse-Key": "k"}, timeout=5)
    body = s.read_until(lambda b: b"data: v19" in b, timeout=5)
    s.close()
    assert len([e for e in parse_sse(body) if "data" in e]) < 20


def test_a_stalled_subscriber_drops_oldest_and_the_others_keep_up(nginx):
    c = uuid.uuid4().hex
    # a client that does not read, with a small window
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", nginx.port))
    stalled.sendall(("GET /slow/%s HTTP/1.1\r\nHost: x\r\n"
                     "Accept: text/event-stream\r\n\r\n" % c).encode())
    others = [sse(nginx.url("/sub/" + c)) for _ in range(5)]
    time.sleep(0.2)
    body = "x" * 10000  # 6 MB: more than the kernel's buffers take
    counts = []

    def drain(o):
        got = o.read_until(lambda b: b.count(b"data: ") >= 600, timeout=30)
        counts.append(got.count(b"data: "))
        o.close()
    readers = [threading.Thread(target=drain, args=(o,)) for o in others]
    for r in readers:
        r.start()
    pub = requests.Session()
    for i in range(600):
        pub.post(nginx.url("/pub/" + c), data="%d:%s" % (i, body), timeout=5)
    for r in readers:
        r.join()
    assert counts == [600] * len(others)
    # the stalled one now reads: a gap event, then the newest messages;
    # the connection stayed open
    stalled.settimeout(5)
    data = b""
    deadline = time.monotonic() + 10
    while b"data: 599:" not in data and time.monotonic() < deadline:
        chunk = stalled.recv(65536)
        assert chunk, "the stalled subscriber was closed"
        data += chunk
    stalled.close()
    assert b"event: pulse-gap" in data
    assert b"data: 599:" in data
    assert data.count(b"\ndata: ") < 600
    m = requests.get(nginx.url("/metrics"), timeout=5).text
    dropped = [l for l in m.split("\n")
               if l.startswith('pulse_messages_dropped_total{reason="queue_full"}')]
    assert dropped and float(dropped[0].split()[-1]) > 0


def test_close_policy_ends_the_stream_and_resume_recovers(nginx):
    c = uuid.uuid4().hex
    s = sse(nginx.url("/strict/" + c))
    requests.post(nginx.url("/pub/" + c), data="m0", timeout=5)
    first = parse_sse(s.read_until(lambda b: b"data: m0" in b))[-1]["id"]
    # throttled for 1 s with room for 5: the write due with six ends the
    # stream
    for i in range(1, 7):
        requests.post(nginx.url("/pub/" + c), data="m%d" % i, timeout=5)
    s.expect_end(timeout=5)
    # the client resumes from where it was and loses nothing
    r = sse(nginx.url("/sub/" + c), headers={"Last-Event-ID": first})
    body = r.read_until(lambda b: b.count(b"data: m") >= 6)
    r.close()
    assert [e["data"] for e in parse_sse(body) if "data" in e] == [
        "m%d" % i for i in range(1, 7)]


@pytest.mark.parametrize("query,why", [
    ("throttle=soon", "Invalid duration"),
    ("throttle=0", "Invalid duration"),
    ("throttle=1s&interval=1s", "not several"),
    ("mode=manual", "fetch"),
    ("mode=fast", "Invalid mode"),
])
def test_bad_asks_are_refused_clearly(nginx, query, why):
    r = requests.get(nginx.url("/sub/x?" + query), timeout=5,
                     headers={"Accept": "text/event-stream"})
    assert r.status_code == 400
    assert why in r.text
    # the server is fine
    assert requests.get(nginx.url("/metrics"), timeout=5).status_code == 200


def test_bad_asks_are_refused_on_polls_and_websocket_handshakes(nginx):
    r = requests.get(nginx.url("/sub/x?throttle=soon"), timeout=5)
    assert r.status_code == 400 and "Invalid duration" in r.text
    with pytest.raises(HandshakeError) as e:
        WsClient(nginx.port, "/sub/x?interval=0")
    assert e.value.status == 400
    # manual is pulse.v1's: allowed there, refused on a plain socket
    with pytest.raises(HandshakeError) as e:
        WsClient(nginx.port, "/sub/x?mode=manual")
    assert e.value.status == 400
    ws = WsClient(nginx.port, "/v1?mode=manual", protocols="pulse.v1")
    ws.send_json({"type": "ping"})
    assert ws.recv_json()["type"] == "pong"
    ws.close()


def test_a_bad_pulse_key_is_refused(nginx):
    r = requests.post(nginx.url("/pub/x"), data="v", timeout=5,
                      headers={"Pulse-Key": "k" * 257})
    assert r.status_code == 400
    assert "Pulse-Key header" in r.text
    r = requests.post(nginx.url("/pub/x"), data="v", timeout=5,
                      headers={"Pulse-Key": "ok"})
    assert r.status_code in (201, 202)


@pytest.mark.parametrize("directive,error", [
    ("pulse_subscriber_throttle soon;", "Invalid duration"),
    ("pulse_subscriber_throttle_min 0;", "Invalid duration"),
    ("pulse_subscriber_queue messages=x;", "is not messages=N"),
    ("pulse_subscriber_queue overflow=later;", "is not messages=N"),
    ("pulse_subscriber_queue bytes;", "is not messages=N"),
])
def test_bad_directives_fail_the_config_test(nginx_factory, directive, error):
    conf = ("server { listen 127.0.0.1:{port}; location /s { "
            "pulse_subscriber; %s } }" % directive)
    n = nginx_factory(conf, start=False)
    res = n.test_config()
    assert res.returncode != 0
    assert error in res.stderr


def poll(n, path, etag=None, last_modified=None, timeout=10):
    h = {}
    if etag is not None:
        h = {"If-None-Match": etag, "If-Modified-Since": last_modified}
    return requests.get(n.url(path), headers=h, timeout=timeout)


def test_a_paced_long_poll_answers_with_what_is_conflated(nginx):
    c = uuid.uuid4().hex
    requests.post(nginx.url("/pub/" + c), data="start", timeout=5)
    first = poll(nginx, "/sub/" + c, "0",
                 "Thu, 01 Jan 1970 00:00:00 GMT")
    assert first.text == "start"
    etag, lm = first.headers["Etag"], first.headers["Last-Modified"]
    # a waiting paced poll answers a while after the first new message,
    # with the latest of its key
    out = {}
    t = threading.Thread(target=lambda: out.update(
        r=poll(nginx, "/sub/%s?throttle=300ms" % c, etag, lm)))
    t.start()
    time.sleep(0.2)
    start = time.monotonic()
    for i in range(5):
        requests.post(nginx.url("/pub/" + c), data="v%d" % i, timeout=5,
                      headers={"Pulse-Key": "temp"})
    t.join()
    assert out["r"].text == "v4"
    assert time.monotonic() - start >= 0.2
    # a resume skips what a later message of its key superseded
    for i in range(3):
        requests.post(nginx.url("/pub/" + c), data="a%d" % i, timeout=5,
                      headers={"Pulse-Key": "a"})
        requests.post(nginx.url("/pub/" + c), data="n%d" % i, timeout=5)
    got = []
    etag, lm = out["r"].headers["Etag"], out["r"].headers["Last-Modified"]
    while not got or got[-1] != "n2":
        r = poll(nginx, "/sub/%s?throttle=1s" % c, etag, lm)
        got.append(r.text)
        etag, lm = r.headers["Etag"], r.headers["Last-Modified"]
    assert got == ["n0", "n1", "a2", "n2"]
    # live, as nchan: every one
    r = poll(nginx, "/sub/" + c, out["r"].headers["Etag"],
             out["r"].headers["Last-Modified"])
    assert r.text == "a0"
