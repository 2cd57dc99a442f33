"""nchan's hooks (docs/auth.md "Hooks") against a real upstream (a Python
HTTP server here): pulse_authorize_request on every transport, before any
WebSocket upgrade; pulse_publisher_upstream_request's statuses;
pulse_subscribe_request / pulse_unsubscribe_request firing however a
subscriber goes; a JWT checked first and its claims passed on; upstreams
that are down or slow. The refusal a subscriber sees is compared with the
installed nchan's byte for byte."""

import http.server
import json
import socket
import threading
import time
import urllib.parse
import uuid

import jwt as pyjwt
import pytest
import requests

from clients import sse
from conftest import free_port, wait_for
from wsclient import HandshakeError, WsClient

SECRET = "a-hook-test-secret-of-at-least-32-bytes"
# an answer far past subrequest_output_buffer_size's default (4k or 8k)
# and past the proxy's memory buffers (so it comes from a temp file where
# proxy_max_temp_file_size allows one)
BIG = bytes(range(32, 127)) * 4000

# Hook locations are common to both flavors; the JWT ones are Pulse's only.
COMMON = """
    location = /_auth/ok {
        internal;
        proxy_pass http://127.0.0.1:{up}/auth/ok;
        proxy_set_header X-Channel $pulse_channel_id;
        proxy_set_header X-Type $pulse_subscriber_type;
    }
    location = /_auth/deny {
        internal; proxy_pass http://127.0.0.1:{up}/auth/deny;
    }
    location = /_auth/down {
        internal; proxy_pass http://127.0.0.1:{down}/;
    }
    location = /_auth/slow {
        internal; proxy_pass http://127.0.0.1:{up}/auth/slow;
        proxy_read_timeout 1s;
    }
    location ~ ^/_auth/(big|bigdeny)$ {
        internal; proxy_pass http://127.0.0.1:{up}/auth/$1;
        proxy_max_temp_file_size 0;
    }
    location ~ ^/a/(ok|deny|down|slow|big|bigdeny)/(.+)$ {
        pulse_pubsub; pulse_channel_id $2;
        pulse_authorize_request /_auth/$1;
    }
    location = /_up/down {
        internal; proxy_pass http://127.0.0.1:{down}/;
    }
    location ~ ^/_up/(.+)$ {
        internal; proxy_pass http://127.0.0.1:{up}/up/$1;
    }
    location ~ ^/p/(answer|same|drop|no|down|big)/(.+)$ {
        pulse_publisher; pulse_channel_id $2;
        pulse_publisher_upstream_request /_up/$1;
    }
    location ~ ^/_roomy/(.+)$ {
        internal; proxy_pass http://127.0.0.1:{up}/up/$1;
        subrequest_output_buffer_size 1m;
        proxy_max_temp_file_size 0;
    }
    location ~ ^/roomy/(.+)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_publisher_upstream_request /_roomy/big;
    }
    location ~ ^/wsp/(answer|same|drop|no|big)/(.+)$ {
        pulse_publisher websocket; pulse_channel_id $2;
        pulse_publisher_upstream_request /_up/$1;
    }
    location ~ ^/s/(.+)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_first_message oldest;
    }
    location ~ ^/_presence/(sub|unsub)$ {
        internal;
        proxy_pass http://127.0.0.1:{up}/presence/$1?ch=$pulse_channel_id&type=$pulse_subscriber_type&$args;
        proxy_ignore_client_abort on;
    }
    location ~ ^/pres/(.+)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscribe_request /_presence/sub;
        pulse_unsubscribe_request /_presence/unsub;
    }
    location ~ ^/prespub/(.+)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/presbig/(.+)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscribe_request /_auth/big;
        pulse_unsubscribe_request /_auth/big;
    }
"""

PULSE_ONLY = """
    location = /_auth/claims {
        internal; proxy_pass http://127.0.0.1:{up}/auth/ok;
        proxy_set_header X-Tenant-Var $pulse_tenant;
    }
    location ~ ^/jwt/(.+)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_jwt_key {keys}/hs.key;
        pulse_jwt_token arg=token;
        pulse_jwt_tenant_claim tenant;
        pulse_authorize_request /_auth/claims;
    }
    location = /_auth/denyfile {
        internal; return 403; error_page 403 /_files/deny.txt;
    }
    location ~ ^/_auth/(small|big)file$ { internal; alias {keys}/$1.txt; }
    location /_files/ {
        internal; alias {keys}/; default_type text/x-deny;
        add_header X-Reason from-a-file always;
    }
    location ~ ^/f/(denyfile|smallfile|bigfile)/(.+)$ {
        pulse_subscriber; pulse_channel_id $2;
        pulse_authorize_request /_auth/$1;
    }
    location ~ ^/_auth/(big|bigdeny)spool$ {
        internal; proxy_pass http://127.0.0.1:{up}/auth/$1;
        proxy_set_header X-Spool spool;
    }
    location ~ ^/a/(bigspool|bigdenyspool)/(.+)$ {
        pulse_subscriber; pulse_channel_id $2;
        pulse_authorize_request /_auth/$1;
    }
    location ~ ^/presbigspool/(.+)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscribe_request /_auth/bigspool;
        pulse_unsubscribe_request /_auth/bigspool;
    }
    location ~ ^/_roomyspool/(.+)$ {
        internal; proxy_pass http://127.0.0.1:{up}/up/$1;
        subrequest_output_buffer_size 1m;
    }
    location ~ ^/roomyspool/(.+)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_publisher_upstream_request /_roomyspool/big;
    }
    location ~ ^/predown/(.+)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscribe_request /_auth/down;
        pulse_unsubscribe_request /_auth/down;
    }
"""


class App(http.server.BaseHTTPRequestHandler):
    seen = []
    lock = threading.Lock()

    def record(self, body=b""):
        u = urllib.parse.urlsplit(self.path)
        with App.lock:
            App.seen.append({
                "method": self.command, "path": u.path,
                "query": urllib.parse.parse_qs(u.query),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body})

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status not in (204, 304):
            self.wfile.write(body)

    def do_GET(self):
        self.record()
        path = urllib.parse.urlsplit(self.path).path
        if path == "/auth/deny":
            self.answer(403, b"denied by the app\n",
                        [("Content-Type", "text/x-deny"),
                         ("X-Reason", "not-yours")])
        elif path == "/auth/big":
            self.answer(200, BIG, [("Content-Type", "text/x-big")])
        elif path == "/auth/bigdeny":
            self.answer(403, BIG, [("Content-Type", "text/x-big"),
                                   ("X-Reason", "big")])
        elif path == "/auth/slow":
            time.sleep(3)
            self.answer(200)
        else:
            self.answer(200)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.record(body)
        kind = urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1]
        if kind == "answer":
            self.answer(200, b"UP:" + body, [("Content-Type", "text/x-up")])
        elif kind == "big":
            self.answer(200, b"BIG:" + body + BIG,
                        [("Content-Type", "text/x-up")])
        elif kind == "same":
            self.answer(304)
        elif kind == "drop":
            self.answer(204)
        else:
            self.answer(400, b"no")

    def log_message(self, *a):
        pass


def seen(pred):
    with App.lock:
        return [r for r in App.seen if pred(r)]


@pytest.fixture(scope="module")
def app():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()


def config(body, app, keys=""):
    return ("server {\n    listen 127.0.0.1:{port};\n" + body + "}\n") \
        .replace("{up}", str(app)).replace("{down}", str(free_port())) \
        .replace("{keys}", keys)


@pytest.fixture(scope="module")
def servers(nginx_factory, app, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys")
    (keys / "hs.key").write_text(SECRET)
    (keys / "deny.txt").write_bytes(b"refused, in a file\n")
    (keys / "small.txt").write_bytes(b"yes\n")
    (keys / "big.txt").write_bytes(BIG)
    pulse = nginx_factory(config(COMMON + PULSE_ONLY, app, str(keys)))
    nchan = nginx_factory(config(COMMON, app), flavor="nchan")
    for n in (pulse, nchan):
        # a down or slow hook upstream is logged as such
        n.allowed += [r"connect\(\) failed", r"upstream timed out"]
    return {"pulse": pulse, "nchan": nchan}


@pytest.fixture(scope="module")
def nginx(servers):
    return servers["pulse"]


def chan():
    return uuid.uuid4().hex


def publish(n, path, body="m", **kw):
    return requests.post(n.url(path), data=body, timeout=10, **kw)


def still_serves(n):
    c = chan()
    assert publish(n, "/prespub/" + c).status_code == 202
    r = requests.get(n.url("/s/" + c), timeout=5)
    assert r.status_code == 200 and r.text == "m"


# --- pulse_authorize_request ----------------------------------------------

def test_authorize_allows_every_transport(nginx):
    c = chan()
    assert publish(nginx, "/a/ok/%s?x=1" % c, "one").status_code == 202
    s = sse(nginx.url("/a/ok/%s?who=es" % c))
    assert s.response.status == 200
    ws = WsClient(nginx.port, "/a/ok/%s?who=ws" % c)
    r = requests.get(nginx.url("/a/ok/%s?who=lp" % c), timeout=5)
    assert r.status_code == 200 and r.text == "one"
    ws.sock.close()
    s.close()
    calls = seen(lambda r: r["headers"].get("x-channel") == c)
    types = sorted(r["headers"]["x-type"] for r in calls
                   if "x-type" in r["headers"])
    assert types == ["eventsource", "longpoll", "websocket"]
    for r in calls:
        assert r["method"] == "GET" and r["path"] == "/auth/ok"
        assert r["body"] == b""
        assert r["headers"].get("content-length", "0") == "0"
    # the subscriber's own query reaches the hook
    assert {r["query"].get("who", [""])[0] for r in calls} >= \
        {"es", "ws", "lp"}
    assert any(r["query"].get("x") == ["1"] for r in calls)


def test_refusal_as_nchan(servers):
    """A subscriber gets the upstream's status, headers and body; a
    publisher a plain 403."""
    def run(n):
        c = chan()
        out = []
        r = requests.get(n.url("/a/deny/" + c),
                         headers={"Accept": "text/event-stream"}, timeout=5)
        out.append((r.status_code, r.headers.get("X-Reason"),
                    r.headers.get("Content-Type"), r.content))
        r = requests.get(n.url("/a/deny/" + c), timeout=5)
        out.append((r.status_code, r.headers.get("X-Reason"), r.content))
        r = publish(n, "/a/deny/" + c)
        out.append((r.status_code, r.headers.get("X-Reason"), r.content))
        return out
    out = {flavor: run(n) for flavor, n in servers.items()}
    assert out["pulse"] == out["nchan"], out
    assert out["pulse"][0][0] == 403
    assert out["pulse"][0][1] == "not-yours"
    assert out["pulse"][0][3] == b"denied by the app\n"
    assert out["pulse"][0][2] == "text/x-deny"
    # a publisher: nginx's own 403 page, not the app's answer
    assert out["pulse"][2][0] == 403 and b"denied" not in out["pulse"][2][2]


def test_websocket_refused_before_the_upgrade(nginx):
    with pytest.raises(HandshakeError) as e:
        WsClient(nginx.port, "/a/deny/" + chan())
    assert e.value.status == 403
    still_serves(nginx)


@pytest.mark.parametrize("hook,sub_status", [("down", 502), ("slow", 504)])
def test_upstream_down_or_slow(nginx, hook, sub_status):
    """No hung subscriber: nginx's own status (the proxy's timeouts bound
    it), and the worker goes on."""
    c = chan()
    t0 = time.monotonic()
    r = requests.get(nginx.url("/a/%s/%s" % (hook, c)),
                     headers={"Accept": "text/event-stream"}, timeout=10)
    assert r.status_code == sub_status
    assert time.monotonic() - t0 < 8
    with pytest.raises(HandshakeError) as e:
        WsClient(nginx.port, "/a/%s/%s" % (hook, c), timeout=10)
    assert e.value.status == sub_status
    assert publish(nginx, "/a/%s/%s" % (hook, c)).status_code == 403
    still_serves(nginx)


def test_client_gone_while_authorizing(nginx):
    sock = socket.create_connection(("127.0.0.1", nginx.port))
    sock.sendall(("GET /a/slow/%s HTTP/1.1\r\nHost: x\r\n"
                  "Accept: text/event-stream\r\n\r\n" % chan()).encode())
    time.sleep(0.2)
    sock.close()
    time.sleep(1.5)
    still_serves(nginx)


def test_jwt_first_then_the_hook_with_claims(nginx):
    c = chan()
    token = pyjwt.encode({"sub": "alice", "tenant": "acme",
                          "exp": int(time.time()) + 60}, SECRET,
                         algorithm="HS256")
    # no token: 401 from the JWT check, the hook is never asked
    before = len(seen(lambda r: True))
    assert requests.get(nginx.url("/jwt/" + c), timeout=5).status_code == 401
    assert len(seen(lambda r: True)) == before
    # a client's own X-Pulse-* headers never reach the hook
    s = sse(nginx.url("/jwt/%s?token=%s" % (c, token)),
            headers={"X-Pulse-Sub": "mallory", "X-Pulse-Tenant": "evil"})
    assert s.response.status == 200
    s.close()
    calls = seen(lambda r: r["headers"].get("x-tenant-var") == "acme")
    assert calls, "the hook did not see the token's tenant"
    h = calls[-1]["headers"]
    assert h["x-pulse-sub"] == "alice"
    assert h["x-pulse-tenant"] == "acme"
    assert json.loads(h["x-pulse-claims"])["sub"] == "alice"
    assert "mallory" not in json.dumps(h) and "evil" not in json.dumps(h)


# --- pulse_publisher_upstream_request -------------------------------------

def test_publisher_upstream_answer_is_published(servers):
    def run(n):
        c = chan()
        r = publish(n, "/p/answer/" + c, "hello",
                    headers={"Content-Type": "text/plain"})
        got = requests.get(n.url("/s/" + c), timeout=5)
        return r.status_code, got.status_code, got.text, \
            got.headers.get("Content-Type")
    out = {flavor: run(n) for flavor, n in servers.items()}
    assert out["pulse"] == out["nchan"], out
    assert out["pulse"] == (202, 200, "UP:hello", "text/x-up")


def test_publisher_upstream_statuses(servers):
    def run(n):
        out = []
        for kind in ("same", "drop", "no"):
            c = chan()
            r = publish(n, "/p/%s/%s" % (kind, c), "orig",
                        headers={"Content-Type": "text/x-orig"})
            info = requests.get(n.url("/prespub/" + c), timeout=5)
            got = None
            if info.status_code == 200:
                m = requests.get(n.url("/s/" + c), timeout=5)
                got = (m.text, m.headers.get("Content-Type"))
            out.append((kind, r.status_code, got))
        return out
    out = {flavor: run(n) for flavor, n in servers.items()}
    assert out["pulse"] == out["nchan"], out
    assert out["pulse"] == [("same", 202, ("orig", "text/x-orig")),
                            ("drop", 204, None), ("no", 403, None)]
    # what the upstream was sent: the original body and headers, by POST
    posts = seen(lambda r: r["path"] == "/up/same")
    assert posts[-1]["method"] == "POST" and posts[-1]["body"] == b"orig"
    assert posts[-1]["headers"]["content-type"] == "text/x-orig"


def test_publisher_upstream_per_websocket_frame(servers):
    """nchan sends each published frame through the upstream too."""
    def run(n):
        out = []
        for kind in ("answer", "same", "drop"):
            c = chan()
            ws = WsClient(n.port, "/wsp/%s/%s" % (kind, c),
                          headers={"Content-Type": "text/x-orig"})
            ws.send_text("hi")
            if kind != "drop":
                # a publisher socket answers with the channel's info
                assert b"messages" in ws.recv_frame().payload
            else:
                time.sleep(0.5)
            info = requests.get(n.url("/prespub/" + c), timeout=5)
            got = None
            if info.status_code == 200:
                m = requests.get(n.url("/s/" + c), timeout=5)
                got = (m.text, m.headers.get("Content-Type"))
            out.append((kind, got))
            ws.sock.close()
        return out
    out = {flavor: run(n) for flavor, n in servers.items()}
    # one deliberate difference (docs/auth.md, Hooks): nchan 1.3.6 stores
    # the upstream's body of a frame with the socket's Content-Type, as
    # for no HTTP publish; Pulse uses the upstream's on both paths
    assert out["nchan"][0] == ("answer", ("UP:hi", "text/x-orig"))
    assert out["pulse"][1:] == out["nchan"][1:], out
    assert out["pulse"] == [("answer", ("UP:hi", "text/x-up")),
                            ("same", ("hi", "text/x-orig")),
                            ("drop", None)]


def test_publisher_upstream_refuses_a_websocket_frame(nginx):
    c = chan()
    ws = WsClient(nginx.port, "/wsp/no/" + c)
    ws.send_text("nope")
    f = ws.expect_close()
    assert f.close_code == 1008 and f.close_reason == "403 Forbidden"
    assert requests.get(nginx.url("/prespub/" + c),
                        timeout=5).status_code == 404
    # frames in order through the upstream
    d = chan()
    ws = WsClient(nginx.port, "/wsp/answer/" + d)
    for i in range(5):
        ws.send_text("m%d" % i)
    for i in range(5):
        ws.recv_frame()
    s = sse(nginx.url("/s/" + d))
    body = s.read_until(lambda b: b.count(b"data:") >= 5)
    assert [l for l in body.split(b"\n") if l.startswith(b"data:")] == \
        [b"data: UP:m%d" % i for i in range(5)]
    s.close()
    ws.sock.close()
    still_serves(nginx)


def test_publisher_upstream_down(nginx):
    nginx.allowed.append(r"connect\(\) failed")
    c = chan()
    # nothing listens there: the proxy's 502 is an answer, so 403
    assert publish(nginx, "/p/down/" + c).status_code == 403
    assert any("connect() failed" in line and "/_up/down" in line
               for line in nginx.log().splitlines())
    assert requests.get(nginx.url("/prespub/" + c),
                        timeout=5).status_code == 404
    still_serves(nginx)


# --- pulse_subscribe_request / pulse_unsubscribe_request ------------------

def presence(c, kind):
    return seen(lambda r: r["path"] == "/presence/" + kind
                and r["query"].get("ch") == [c])


def test_presence_on_abrupt_disconnect(nginx):
    c = chan()
    s = sse(nginx.url("/pres/%s?user=bob" % c))
    wait_for(lambda: presence(c, "sub"), what="subscribe hook")
    r = presence(c, "sub")[0]
    assert r["method"] == "GET"
    assert r["query"]["type"] == ["eventsource"]
    assert r["query"]["user"] == ["bob"]  # the subscriber's own query
    assert not presence(c, "unsub")
    # no close handshake at all: a reset
    s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.sock.close()
    wait_for(lambda: presence(c, "unsub"), what="unsubscribe hook")
    time.sleep(0.3)
    assert len(presence(c, "sub")) == 1 and len(presence(c, "unsub")) == 1
    assert presence(c, "unsub")[0]["query"]["type"] == ["eventsource"]


def test_presence_websocket_and_server_end(nginx):
    c = chan()
    ws = WsClient(nginx.port, "/pres/" + c)
    wait_for(lambda: presence(c, "sub"), what="subscribe hook")
    assert presence(c, "sub")[0]["query"]["type"] == ["websocket"]
    ws.sock.close()  # no close frame
    wait_for(lambda: presence(c, "unsub"), what="unsubscribe hook")
    # a stream the server ends (its channel deleted)
    d = chan()
    s = sse(nginx.url("/pres/" + d))
    wait_for(lambda: presence(d, "sub"), what="subscribe hook")
    requests.post(nginx.url("/prespub/" + d), data="x", timeout=5)
    assert requests.delete(nginx.url("/prespub/" + d),
                           timeout=5).status_code == 200
    wait_for(lambda: presence(d, "unsub"), what="unsubscribe hook")
    s.close()
    time.sleep(0.3)
    assert len(presence(d, "unsub")) == 1


def test_presence_not_for_polling(nginx):
    c = chan()
    publish(nginx, "/prespub/" + c)
    r = requests.get(nginx.url("/pres/" + c), timeout=5)
    assert r.status_code == 200
    time.sleep(0.5)
    assert not presence(c, "sub") and not presence(c, "unsub")


def test_presence_upstream_down_holds_nothing_up(nginx):
    nginx.allowed.append(r"connect\(\) failed")
    c = chan()
    s = sse(nginx.url("/predown/" + c))
    publish(nginx, "/prespub/" + c, "live")
    s.read_until(lambda b: b"live" in b)
    s.close()
    time.sleep(0.3)
    wait_for(lambda: "pulse_unsubscribe_request answered 502"
             in nginx.log(), what="the failed hook logged")
    still_serves(nginx)


def test_presence_many_subscribers(nginx):
    """Every subscriber gets exactly one of each, and no hook connection
    is left behind."""
    c = chan()
    streams = [sse(nginx.url("/pres/%s?i=%d" % (c, i))) for i in range(40)]
    wait_for(lambda: len(presence(c, "sub")) == 40, what="40 subscribes")
    for s in streams:
        s.close()
    wait_for(lambda: len(presence(c, "unsub")) == 40, what="40 unsubscribes")
    time.sleep(0.3)
    assert sorted(r["query"]["i"][0] for r in presence(c, "unsub")) == \
        sorted(str(i) for i in range(40))
    still_serves(nginx)


def test_presence_on_reload(nginx):
    """A reload closes the old workers' streams: each sends its
    unsubscribe before the worker exits."""
    c = chan()
    streams = [sse(nginx.url("/pres/%s?i=%d" % (c, i))) for i in range(4)]
    wait_for(lambda: len(presence(c, "sub")) == 4, what="4 subscribes")
    nginx.reload()
    wait_for(lambda: len(presence(c, "unsub")) == 4, what="4 unsubscribes")
    for s in streams:
        s.close()
    still_serves(nginx)


# --- answers bigger than subrequest_output_buffer_size ---------------------

@pytest.mark.parametrize("spool", ["", "spool"])
def test_big_answers(nginx, spool):
    """A hook's answer past subrequest_output_buffer_size: its status still
    decides, a refusal goes on without its body, and a location that makes
    room gets the whole of it, whether the proxy may spool it to a
    temporary file or not. nchan 1.3.6 answers the same statuses and headers (allowed
    200, refused 403 with the app's X-Reason and Content-Type and no body)
    but then its worker aborts ("close() ... failed (9: Bad file
    descriptor)", double free) when the proxy spooled the answer, and hangs
    when it did not, so it is not run side by side here."""
    c = chan()
    s = sse(nginx.url("/a/big%s/%s" % (spool, c)))
    assert s.response.status == 200
    s.close()
    r = requests.get(nginx.url("/a/bigdeny%s/%s" % (spool, c)), timeout=5)
    assert (r.status_code, r.headers.get("X-Reason"),
            r.headers.get("Content-Type"), r.headers.get("Content-Length"),
            r.content) == (403, "big", "text/x-big", "0", b"")
    # presence hooks answered the same: the subscriber does not notice
    s = sse(nginx.url("/presbig%s/%s" % (spool, c)))
    assert s.response.status == 200
    s.close()
    wait_for(lambda: len(seen(lambda q: q["path"] == "/auth/big"
                              and q["headers"].get("x-spool", "") == spool))
             >= 3)
    d = chan()
    assert publish(nginx, "/roomy%s/%s" % (spool, d), "hey") \
        .status_code == 202
    m = requests.get(nginx.url("/s/" + d), timeout=5)
    assert m.content == b"BIG:hey" + BIG
    assert m.headers.get("Content-Type") == "text/x-up"
    assert "hook answer bigger than subrequest_output_buffer_size (4096)" \
        in nginx.log()
    still_serves(nginx)


def test_answers_from_files(nginx):
    """Answers nginx serves from a file (a static location, an error_page):
    the status decides as for any other. An error_page's answer is decided
    at the error, so its file's body does not go on. (nchan 1.3.6 aborts
    on the error_page one: "longpoll_release: Assertion `self->reserved >
    0' failed".)"""
    for kind in ("smallfile", "bigfile"):
        s = sse(nginx.url("/f/%s/%s" % (kind, chan())))
        assert s.response.status == 200, kind
        s.close()
    r = requests.get(nginx.url("/f/denyfile/" + chan()), timeout=5)
    assert (r.status_code, r.headers.get("X-Reason"), r.content) == \
        (403, None, b"")
    still_serves(nginx)


def test_publisher_upstream_answer_too_big(nginx):
    """What the upstream meant to publish did not fit: 502, nothing
    published, the publisher's connection answered (nchan 1.3.6 drops it
    without a response, and its worker can crash on the WebSocket path)."""
    c = chan()
    with requests.Session() as s:
        r = s.post(nginx.url("/p/big/" + c), data="hey", timeout=10)
        assert r.status_code == 502
        # the same keep-alive connection goes on
        assert s.post(nginx.url("/prespub/" + c), data="after",
                      timeout=5).status_code == 202
    m = requests.get(nginx.url("/s/" + c), timeout=5)
    assert m.text == "after"
    d = chan()
    ws = WsClient(nginx.port, "/wsp/big/" + d)
    ws.send_text("hi")
    f = ws.expect_close()
    assert f.close_code == 1011 and f.close_reason == "502 Bad Gateway"
    assert requests.get(nginx.url("/prespub/" + d),
                        timeout=5).status_code == 404
    still_serves(nginx)
