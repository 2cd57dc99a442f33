"""pulse.js in headless Chromium (Debian's /usr/bin/chromium, driven by npm
playwright-core) against the real stack: nginx with the module, redis-server
and pulse-publisher. Live delivery on three channels, the run-time fallback
WebSocket -> EventSource -> long-poll and the re-upgrade, nginx stopped and
started again under a stream with no message lost or repeated, Redis
restarted, a pulse.v1 command round trip, and the per-channel modes.
Screenshots go to build/screenshots/."""

import http.server
import json
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest
import redis
import requests

from browser import JS_DIR
from conftest import ROOT, free_port, publisher_lines, wait_for

NGINX_CONFIG = """
map $http_accept $wants_sse { ~text/event-stream 1; default 0; }
server {
    listen 127.0.0.1:{port};
    location = /pulse.js {
        types {} default_type application/javascript;
        alias @JS@/src/pulse.js;
    }
    location = /page.html {
        types {} default_type text/html;
        alias @JS@/test/e2e/page.html;
    }
    location = /nchan.html {
        types {} default_type text/html;
        alias @JS@/test/e2e/nchan.html;
    }
    location = /nchan.js {
        types {} default_type application/javascript;
        alias @ROOT@/node_modules/nchan/NchanSubscriber.js;
    }
    location ~ ^/pub/(.+)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_publisher_message_id on;
        pulse_message_buffer_length 2000;
    }
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
    location = /ws {
        pulse_subscriber websocket;
        pulse_websocket_upstream /command;
        pulse_websocket_identity $arg_user;
    }
    location = /command {
        internal;
        proxy_pass http://127.0.0.1:@UPSTREAM@/jobs;
    }
    # A proxy that refuses WebSocket upgrades, one that refuses
    # EventSource too, and one that refuses them while a file exists.
    location = /ws-blocked { return 403; }
    location ~ ^/sse-blocked/(.+)$ {
        if ($wants_sse) { return 403; }
        pulse_subscriber; pulse_channel_id $1;
    }
    location = /ws-toggle {
        if (-f @PREFIX@/block-ws) { return 403; }
        pulse_subscriber websocket;
    }
}
"""


class Jobs(http.server.BaseHTTPRequestHandler):
    """The demo's job service, in small: a command is a JSON action."""
    seen = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        cmd = json.loads(body)
        Jobs.seen.append((self.headers.get("X-Pulse-Channel"),
                          self.headers.get("X-Pulse-Identity"), cmd))
        ok = cmd.get("action") in ("cancel", "pause", "resume")
        out = json.dumps({"job": cmd.get("job"), "state": cmd.get("action")}
                         if ok else {"error": "unknown action"}).encode()
        self.send_response(200 if ok else 422)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def upstream():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jobs)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()


@pytest.fixture(scope="module")
def stack(nginx_factory, upstream, tmp_path_factory):
    n = nginx_factory("", start=False)
    n.write_conf(NGINX_CONFIG.replace("@JS@", JS_DIR).replace("@ROOT@", ROOT)
                 .replace("@UPSTREAM@", str(upstream))
                 .replace("@PREFIX@", n.prefix))
    n.start()
    return n


def publish(n, channel, data, headers=None):
    r = requests.post(n.url("/pub/" + channel), data=data,
                      headers=headers or {})
    assert r.status_code in (201, 202), r.text
    return r


def received(b, channel):
    return b.eval("T.msgs[%s].map(m => [m[0], m[1]])" % json.dumps(channel))


def open_page(b, n, **args):
    q = "&".join("%s=%s" % kv for kv in args.items())
    b.open(n.url("/page.html?" + q))


def assert_exactly(b, channel, expected, timeout=10):
    b.wait("T.msgs[%s].length >= %d" % (json.dumps(channel), len(expected)),
           timeout, "%d messages on %s" % (len(expected), channel))
    time.sleep(0.2)  # anything extra (a duplicate) would show by now
    assert [m[1] for m in received(b, channel)] == expected


def test_live_updates_on_three_channels_over_one_websocket(page, stack):
    open_page(page, stack, channels="bandwidth,sessions,faults")
    page.wait("T.statuses.includes('live:websocket')")
    assert page.eval("pulse.transportName") == "websocket"
    sent = {c: ["%s-%d" % (c, i) for i in range(5)]
            for c in ("bandwidth", "sessions", "faults")}
    for i in range(5):
        for c in sent:
            publish(stack, c, sent[c][i])
    for c in sent:
        assert_exactly(page, c, sent[c])
    ids = [m[0] for m in received(page, "bandwidth")]
    assert all(ids), ids
    assert page.eval("T.statuses") == ["connecting", "live:websocket"]


def test_a_wildcard_gets_new_channels_by_their_names(page, stack):
    """pulse.js `subscribe("<prefix>.*")` over pulse.v1: channels created
    after it are joined, each message names its channel."""
    pre = "wb" + uuid.uuid4().hex[:10]
    publish(stack, pre + ".old", "before")  # no history for a wildcard
    open_page(page, stack, channels=pre + ".*")
    page.wait("T.statuses.includes('live:websocket')")
    # subscribed once a probe channel's message arrives
    key = json.dumps(pre + ".*")
    for _ in range(100):
        publish(stack, pre + ".probe", "p")
        if page.eval("T.msgs[%s].length" % key):
            break
        time.sleep(0.1)
    publish(stack, pre + ".cpu", "c1")
    publish(stack, pre + ".mem", "m1")
    publish(stack, pre + ".old", "o1")
    publish(stack, pre + ".cpu.0", "deeper")
    publish(stack, pre + ".cpu", "c2")
    rest = ("T.msgs[%s].filter(m => !m[3].endsWith('.probe'))"
            ".map(m => [m[3], m[1]])" % key)
    page.wait(rest + ".length >= 4", 10, "4 messages on the wildcard")
    time.sleep(0.2)  # anything extra (a duplicate) would show by now
    got = page.eval(rest)
    # in order per channel; a channel joined late comes with its catch-up
    assert sorted(got) == sorted([[pre + ".cpu", "c1"], [pre + ".mem", "m1"],
                                  [pre + ".old", "o1"], [pre + ".cpu", "c2"]])
    assert [d for c, d in got if c == pre + ".cpu"] == ["c1", "c2"]
    assert page.eval("T.errors") == []


def test_websocket_refused_falls_back_to_eventsource(page, stack):
    open_page(page, stack, channels="fb1", ws="/ws-blocked")
    page.wait("T.statuses.includes('live:eventsource')")
    publish(stack, "fb1", "one")
    publish(stack, "fb1", "two")
    assert_exactly(page, "fb1", ["one", "two"])
    assert page.eval("T.transports") == ["eventsource"]


def test_websocket_and_eventsource_refused_fall_back_to_long_poll(page, stack):
    open_page(page, stack, channels="fb2", ws="/ws-blocked",
              sub="/sse-blocked/{channel}")
    page.wait("T.statuses.includes('polling:longpoll')")
    sent = ["p%d" % i for i in range(4)]
    for s in sent:
        publish(stack, "fb2", s)
        time.sleep(0.05)
    assert_exactly(page, "fb2", sent)
    assert page.eval("T.transports") == ["longpoll"]


def test_upgrades_back_to_websocket_once_it_works(page, stack):
    block = os.path.join(stack.prefix, "block-ws")
    open(block, "w").close()
    try:
        open_page(page, stack, channels="up", ws="/ws-toggle",
                  upgradeAfter=1000)
        page.wait("T.statuses.includes('live:eventsource')")
        publish(stack, "up", "before")
        page.wait("T.msgs.up.length == 1")
        time.sleep(1.5)  # the probe after 1 s is refused again
        assert page.eval("pulse.transportName") == "eventsource"
    finally:
        os.unlink(block)
    page.wait("T.transports.includes('websocket')", 10)
    publish(stack, "up", "after")
    assert_exactly(page, "up", ["before", "after"])
    assert page.eval("pulse.transportName") == "websocket"


def test_a_command_round_trips_to_the_job_service(page, stack):
    open_page(page, stack, channels="jobs")
    page.wait("T.statuses.includes('live:websocket')")
    reply = page.eval("pulse.send('jobs', {action: 'cancel', job: 7})")
    assert reply == {"status": 200,
                     "data": json.dumps({"job": 7, "state": "cancel"})}
    assert Jobs.seen[-1] == ("jobs", "", {"action": "cancel", "job": 7})
    bad = page.eval("pulse.send('jobs', {action: 'explode'})")
    assert bad["status"] == 422
    # a command without a socket is a clear error, not a hang
    err = page.eval("""(async () => {
        const p = new (window.pulse.constructor)({transports: ['eventsource']});
        try { await p.send('jobs', {}); return 'sent'; }
        catch (e) { return e.code; } })()""")
    assert err == "unavailable"


def test_modes_live_interval_and_manual(page, stack):
    open_page(page, stack, channels="ml,mi,mm", mode_mi=2000,
              mode_mm="manual")
    page.wait("T.statuses.includes('live:websocket')")
    time.sleep(0.3)  # the three subscribe frames are in
    for i in range(3):
        for c in ("ml", "mi", "mm"):
            publish(stack, c, "%s%d" % (c, i))
    page.wait("T.msgs.ml.length == 3")
    # interval: one write per interval, so all three or none yet
    assert page.eval("T.msgs.mi.length") in (0, 3)
    page.wait("T.msgs.mi.length == 3", 5)
    t = page.eval("T.msgs.mi.map(m => m[2])")
    assert max(t) - min(t) < 500, "one write, not three: %r" % t
    # manual: nothing until refresh(), then all that is held
    time.sleep(0.5)
    assert page.eval("T.msgs.mm.length") == 0
    page.eval("subs.mm.refresh()")
    assert_exactly(page, "mm", ["mm0", "mm1", "mm2"])
    # switching to live delivers at once
    page.eval("subs.mm.setMode('live')")
    time.sleep(0.3)
    publish(stack, "mm", "mm3")
    page.wait("T.msgs.mm.length == 4", 3)
    # back to manual: held again
    page.eval("subs.mm.setMode('manual')")
    time.sleep(0.3)
    publish(stack, "mm", "mm4")
    time.sleep(0.5)
    assert page.eval("T.msgs.mm.length") == 4


@pytest.mark.parametrize("transport", ["websocket", "eventsource",
                                       "longpoll"])
def test_nchan_js_subscribes_through_each_of_its_transports(page, stack,
                                                            transport):
    ch = "nchanjs_" + transport
    page.open(stack.url("/nchan.html?transport=%s&url=/sub/%s"
                        % (transport, ch)))
    page.wait("T.events.includes('transport %s')" % transport)
    if transport != "longpoll":  # a long-poll "connects" with its first answer
        page.wait("T.events.includes('connect')")
    else:
        time.sleep(0.5)
    sent = ["%s-%d" % (transport, i) for i in range(3)]
    for s in sent:
        publish(stack, ch, s)
        time.sleep(0.05)
    page.wait("T.msgs.length >= 3", 10, "3 messages through nchan.js")
    time.sleep(0.2)
    got = page.eval("T.msgs")
    assert [m[1] for m in got] == sent
    ids = [m[0] for m in got]
    assert all(ids) and len(set(ids)) == 3, ids  # nchan's ids, resumable
    assert not [e for e in page.eval("T.events") if e.startswith("error")]


# ----------------------------------------------- the sidecar under faults

YAML = """
nginx:
  port: %(port)d
  publish_path: /pub/{channel}
redis:
  port: %(redis)d
sources:
  - name: rows
    type: stream
    keys: [rows]
    target: "{ch}"
"""


class Redis:
    """A redis-server of the test's own, that it may kill and restart on
    the same port."""

    def __init__(self, tmp):
        self.dir = str(tmp)
        self.port = free_port()
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["/usr/bin/redis-server", "--port", str(self.port), "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
             self.dir], stdout=subprocess.DEVNULL)
        c = redis.Redis(port=self.port)

        def up():
            try:
                return c.ping()
            except redis.ConnectionError:
                return False
        wait_for(up, 10, "redis-server")
        return c

    def kill(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def sidecar(request, stack, tmp_path):
    rs = Redis(tmp_path)
    path = str(tmp_path / "publisher.yaml")
    with open(path, "w") as f:
        f.write(YAML % {"port": stack.port, "redis": rs.port})
    proc = subprocess.Popen([request.config.getoption("--publisher"), "-c",
                             path], stderr=subprocess.PIPE, text=True)
    c = redis.Redis(port=rs.port)
    wait_for(lambda: any(x.get("cmd") in ("xread", "xreadgroup")
                         for x in c.client_list()), 10, "publisher reading")
    yield rs, c
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    rs.kill()
    assert proc.returncode == 0, publisher_lines(err)


def test_nginx_restart_resumes_with_no_row_lost_or_repeated(page, stack,
                                                            sidecar):
    rs, r = sidecar
    open_page(page, stack, channels="rows_a")
    page.wait("T.statuses.includes('live:websocket')")
    sent = []

    def add(k):
        for _ in range(k):
            sent.append("row%d" % len(sent))
            r.xadd("rows", {"ch": "rows_a", "data": sent[-1]})
            time.sleep(0.02)
    add(20)
    page.wait("T.msgs.rows_a.length == 20")
    stack.stop()
    page.wait("T.statuses.at(-1).startsWith('reconnecting')", 10)
    add(20)  # while nginx is down: the sidecar holds them
    stack.start()
    page.wait("T.statuses.at(-1) == 'live:websocket'", 15)
    add(20)
    assert_exactly(page, "rows_a", sent, 15)
    ids = [m[0] for m in received(page, "rows_a")]
    assert len(set(ids)) == len(ids)


def test_redis_restart_and_the_stream_widget_resumes(page, stack, sidecar):
    rs, r = sidecar
    open_page(page, stack, channels="rows_b")
    page.wait("T.statuses.includes('live:websocket')")
    r.xadd("rows", {"ch": "rows_b", "data": "first"})
    page.wait("T.msgs.rows_b.length == 1")
    rs.kill()
    time.sleep(0.5)
    r = rs.start()
    # the sidecar reconnects and reads on; the page never noticed
    deadline = time.time() + 20
    while page.eval("T.msgs.rows_b.length") < 2:
        assert time.time() < deadline, "no message after Redis restarted"
        r.xadd("rows", {"ch": "rows_b", "data": "after"})
        time.sleep(0.5)
    assert received(page, "rows_b")[1][1] == "after"
    assert page.eval("T.statuses") == ["connecting", "live:websocket"]
