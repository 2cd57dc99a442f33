"""The dashboard of `make demo` in headless Chromium, against the demo's
whole stack (demo/run.py: redis-server, nginx with the module,
pulse-publisher, the generator, the login and job service): login per
tenant, live widgets, job commands, the Live / Every N s / Manual modes,
the WebSocket and EventSource fallbacks, nginx and Redis restarted under
it. Screenshots go to build/screenshots/ (dashboard.png is the README's)."""

import json
import os
import re
import signal
import subprocess
import time

import pytest
import redis

from conftest import ROOT, free_port, wait_for

ACME_IFACES = {"ge-0/0/0", "ge-0/0/1", "xe-1/0/0", "xe-1/0/1"}
GLOBEX_IFACES = {"et-0/0/0", "et-0/0/1", "ae0", "ae1"}


def running(pid):
    """Alive and not a zombie (the demo reaps its nginx only at exit)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Demo:
    def __init__(self, request):
        self.port = free_port()
        self.request = request
        self.extra = []  # processes the test started in the demo's place
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(ROOT, "demo", "run.py"),
             "--port", str(self.port),
             "--nginx", request.config.getoption("--nginx"),
             "--module", request.config.getoption("--module"),
             "--publisher", request.config.getoption("--publisher"),
             "--redis-server", request.config.getoption("--redis-server")],
            stdout=subprocess.PIPE, text=True, start_new_session=True,
            env=dict(os.environ, PULSE_NGINX_PRELOAD=request.config.getoption(
                "--preload")))
        banner = ""
        while "Ctrl-C" not in banner:
            line = self.proc.stdout.readline()
            assert line, "demo exited early: " + banner
            banner += line
        self.redis_port = int(re.search(r"redis: 127.0.0.1:(\d+)",
                                        banner).group(1))
        self.prefix = re.search(r"files: (\S+)", banner).group(1)
        self.r = redis.Redis(port=self.redis_port)

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def nginx_master(self):
        with open(os.path.join(self.prefix, "nginx.pid")) as f:
            return int(f.read())

    def stop_nginx(self):
        pid = self.nginx_master()
        os.kill(pid, signal.SIGQUIT)
        wait_for(lambda: not running(pid), 15, "nginx to exit")

    def start_nginx(self):
        env = dict(os.environ)
        if self.request.config.getoption("--preload"):
            env["LD_PRELOAD"] = self.request.config.getoption("--preload")
            env["ASAN_OPTIONS"] = "detect_leaks=0"
        p = subprocess.Popen(
            [self.request.config.getoption("--nginx"), "-p", self.prefix,
             "-c", os.path.join(self.prefix, "nginx.conf"), "-e",
             os.path.join(self.prefix, "error.log")], env=env,
            start_new_session=True)
        self.extra.append(p)
        wait_for(lambda: os.path.exists(os.path.join(self.prefix,
                                                     "nginx.pid")), 15,
                 "nginx to start again")

    def redis_pid(self):
        for d in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            # redis-server retitles itself "redis-server 127.0.0.1:<port>"
            if b"redis-server" in cmd and re.search(
                    rb"\b%d\b" % self.redis_port, cmd):
                return int(d)
        return None

    def restart_redis(self):
        pid = self.redis_pid()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not running(pid), 10, "redis to die")
        time.sleep(1)  # the generator and the sidecar notice
        p = subprocess.Popen(
            [self.request.config.getoption("--redis-server"), "--port",
             str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.prefix],
            stdout=subprocess.DEVNULL, start_new_session=True)
        self.extra.append(p)

        def up():
            try:
                return self.r.ping()
            except redis.ConnectionError:
                return False
        wait_for(up, 10, "redis to start again")

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        for p in self.extra:
            if p.poll() is None:
                p.send_signal(signal.SIGQUIT if "nginx" in p.args[0]
                              else signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        assert self.proc.returncode == 0, out


@pytest.fixture(scope="module")
def demo(request):
    d = Demo(request)
    yield d
    d.stop()


def login(b, demo, tenant="acme", query=""):
    b.open(demo.url("/" + query))
    b.wait("document.querySelector('[data-tenant=%s]')" % tenant)
    b.eval("document.querySelector('[data-tenant=%s]').click()" % tenant)
    b.wait("document.querySelector('.pulse-pill')")


def status(b):
    return b.eval("document.querySelector('.pulse-pill').dataset.status")


def count(b, widget):
    return int(b.eval("document.querySelector('[data-widget=%s]')"
                      ".dataset.count" % widget))


def ifaces(b):
    return set(b.eval("[...document.querySelectorAll('[data-iface]')]"
                      ".map(e => e.dataset.iface)"))


def test_live_widgets_and_tenant_isolation(page, demo):
    login(page, demo, "acme")
    page.wait("document.querySelector('.pulse-pill').dataset.status == "
              "'live'")
    assert page.eval("document.querySelector('[data-transport]')"
                     ".dataset.transport") == "websocket"
    # bandwidth charts (uPlot canvases), session rows and job bars fill
    page.wait("document.querySelectorAll('[data-iface]').length == 4 && "
              "[...document.querySelectorAll('[data-iface]')].every("
              "e => +e.dataset.points >= 3)", 15, "4 charts with points")
    assert page.eval("document.querySelectorAll('.uplot canvas').length") \
        >= 4
    page.wait("document.querySelectorAll('[data-session]').length >= 3", 15)
    page.wait("document.querySelectorAll('[data-job]').length >= 1", 15)
    assert ifaces(page) == ACME_IFACES
    page.wait("document.querySelector('.updated').dataset.lastUpdate > 0")
    users = page.eval("[...document.querySelectorAll('[data-session] td')]"
                      ".filter((_, i) => i % 5 == 0).map(e => e.textContent)")
    assert users and all(u.endswith("@acme.example") for u in users), users
    # (a fuller picture for the README's screenshot)
    page.wait("[...document.querySelectorAll('[data-iface]')].every("
              "e => +e.dataset.points >= 12)", 15)
    # a fault written now shows in the stream, with a toast
    demo.r.xadd("demo:events", {"tenant": "acme", "widget": "faults",
                                "event": "critical", "data": json.dumps({
                                    "ts": time.time(), "severity": "critical",
                                    "code": "TEST", "device": "bras-east-1",
                                    "text": "uplink fibre cut"})})
    page.wait("[...document.querySelectorAll('.toast')].some("
              "e => e.textContent.includes('uplink fibre cut'))", 10)
    page.screenshot("dashboard.png")
    text = page.eval("document.body.innerText")
    assert "Live" in text and "last update" in text
    # the other tenant sees only its own devices
    page.eval("document.querySelector('.logout').click()")
    page.wait("document.querySelector('[data-tenant=globex]')")
    page.eval("document.querySelector('[data-tenant=globex]').click()")
    page.wait("document.querySelectorAll('[data-iface]').length == 4", 15)
    time.sleep(1)
    assert ifaces(page) == GLOBEX_IFACES
    assert "uplink fibre cut" not in page.eval("document.body.innerText")


def job_state(b, job):
    return b.eval("document.querySelector('[data-job=\"%s\"]')"
                  ".dataset.state" % job)


def test_job_commands_round_trip_to_the_job_service(page, demo):
    login(page, demo, "acme")
    page.wait("document.querySelector('[data-job][data-state=running]')",
              15)
    job = page.eval("document.querySelector('[data-job][data-state=running]')"
                    ".dataset.job")
    sel = "document.querySelector('[data-job=\"%s\"]')" % job

    def click(action):
        page.eval("%s.querySelector('[data-action=%s]').click()"
                  % (sel, action))
    click("pause")
    page.wait("%s.dataset.state == 'paused'" % sel, 10)
    assert "pause: ok" in page.eval("%s.textContent" % sel)
    percent = page.eval("%s.querySelector('b').nextSibling.textContent"
                        % sel)
    time.sleep(1.2)  # a paused job does not advance
    assert page.eval("%s.querySelector('b').nextSibling.textContent"
                     % sel) == percent
    click("resume")
    page.wait("%s.dataset.state == 'running'" % sel, 10)
    click("cancel")
    page.wait("%s.dataset.state == 'cancelled'" % sel, 10)
    assert "cancel: ok" in page.eval("%s.textContent" % sel)
    # the job service refuses what makes no sense, and says why
    reply = page.eval("window.__pulse.send('jobs', {action: 'resume', "
                      "job: %s})" % json.dumps(job))
    assert reply["status"] in (404, 409), reply
    reply = page.eval("window.__pulse.send('jobs', {action: 'explode'})")
    assert reply["status"] == 400


def test_modes_live_interval_and_manual(page, demo):
    login(page, demo, "acme", "?interval=3000")
    page.wait("document.querySelector('.pulse-pill').dataset.status == "
              "'live'")
    page.wait("document.querySelector('[data-widget=sessions]')"
              ".dataset.count > 0", 10)

    def click(widget, mode):
        page.eval("document.querySelector('[data-widget=%s] "
                  "[data-mode=%s]').click()" % (widget, mode))
    # live: a delivery every generator round (0.5 s)
    seen = set()
    for _ in range(8):
        seen.add(count(page, "sessions"))
        time.sleep(0.25)
    assert len(seen) >= 3, seen
    # every 3 s: a write per interval, however many messages meanwhile
    click("sessions", "interval")
    time.sleep(0.5)
    # One interval's write can reach the page over two animation frames
    # (its frames split across reads, slower under ASan), so changes
    # within 0.4 s of a write's first are that write; live rounds are
    # 0.5 s apart and would count as separate writes.
    writes = []
    last = count(page, "sessions")
    end = time.time() + 7
    while time.time() < end:
        c = count(page, "sessions")
        now = time.time()
        if c != last:
            if writes and now - writes[-1][0][0] < 0.4:
                writes[-1].append((now, c))
            else:
                writes.append([(now, c)])
            last = c
        time.sleep(0.05)
    assert 1 <= len(writes) <= 3, writes
    starts = [w[0][0] for w in writes]
    assert all(b - a > 2.0 for a, b in zip(starts, starts[1:])), writes
    assert page.eval("document.querySelector('[data-widget=sessions] "
                     "[data-mode=interval]').textContent") == "Every 3 s"
    # manual: nothing until Refresh, then what is held at once
    click("sessions", "manual")
    time.sleep(0.5)
    held_from = count(page, "sessions")
    time.sleep(1.5)
    assert count(page, "sessions") == held_from
    page.eval("document.querySelector('[data-widget=sessions] "
              "[data-action=refresh]').click()")
    page.wait("document.querySelector('[data-widget=sessions]')"
              ".dataset.count > %d" % held_from, 5)
    # the refresh's write, too, may reach the page over two frames (above);
    # nothing else comes in manual mode
    time.sleep(0.4)
    after = count(page, "sessions")
    assert after - held_from >= 4, "one refresh writes what was held"
    click("sessions", "live")
    page.wait("document.querySelector('[data-widget=sessions]')"
              ".dataset.count > %d" % after, 5)


def test_falls_back_to_eventsource_then_long_poll(page, demo):
    login(page, demo, "acme", "?ws=/no-ws")
    page.wait("document.querySelector('.pulse-pill').dataset.status == "
              "'live'", 15)
    assert page.eval("window.__pulse.transportName") == "eventsource"
    page.wait("document.querySelectorAll('[data-iface]').length == 4", 15)
    login(page, demo, "acme", "?ws=/no-ws&sub=/no-sse/{channel}")
    page.wait("document.querySelector('.pulse-pill').dataset.status == "
              "'polling'", 20)
    assert page.eval("window.__pulse.transportName") == "longpoll"
    base = count(page, "sessions")
    page.wait("document.querySelector('[data-widget=sessions]')"
              ".dataset.count > %d" % (base + 2), 15)


def fault_ids(b):
    return b.eval("[...document.querySelectorAll('[data-widget=faults] "
                  "li')].map(e => e.dataset.id)")


def add_fault(demo, text):
    return demo.r.xadd("demo:events", {
        "tenant": "acme", "widget": "faults", "event": "minor",
        "data": json.dumps({"ts": time.time(), "severity": "minor",
                            "code": "T", "device": "bras-west-2",
                            "text": text})}).decode()


def msg_id(entry_id):
    ms, seq = entry_id.split("-")
    return "%d:%d" % (int(ms) // 1000, int(ms) % 1000 * 1000000 + int(seq))


def test_nginx_restart_loses_and_repeats_no_row(page, demo):
    login(page, demo, "acme", "?minDelay=300&maxDelay=2000")
    page.wait("document.querySelector('.pulse-pill').dataset.status == "
              "'live'")
    mine = [msg_id(add_fault(demo, "before %d" % i)) for i in range(5)]
    page.wait("%r.every(id => [...document.querySelectorAll("
              "'[data-widget=faults] li')].some(e => e.dataset.id == id))"
              % mine, 10, "the first faults")
    demo.stop_nginx()
    page.wait("['reconnecting', 'connecting'].includes(document."
              "querySelector('.pulse-pill').dataset.status)", 10)
    page.screenshot("dashboard-reconnecting.png")
    # written while nginx is down: the sidecar holds them and retries
    mine += [msg_id(add_fault(demo, "during %d" % i)) for i in range(10)]
    demo.start_nginx()
    page.wait("document.querySelector('.pulse-pill').dataset.status == "
              "'live'", 20)
    mine += [msg_id(add_fault(demo, "after %d" % i)) for i in range(5)]
    page.wait("%r.every(id => [...document.querySelectorAll("
              "'[data-widget=faults] li')].some(e => e.dataset.id == id))"
              % mine, 20, "every fault written")
    time.sleep(0.5)
    ids = fault_ids(page)
    assert len(ids) == len(set(ids)), "a row twice: %r" % ids
    texts = page.eval("[...document.querySelectorAll('[data-widget=faults]"
                      " li')].map(e => e.textContent)")
    ours = [t for t in texts if re.search(r"(before|during|after) \d+$", t)]
    assert len(ours) == 20, ours


def test_redis_restart_and_the_stream_widgets_resume(page, demo):
    login(page, demo, "acme")
    page.wait("document.querySelector('.pulse-pill').dataset.status == "
              "'live'")
    page.wait("document.querySelector('[data-widget=sessions]')"
              ".dataset.count > 0", 10)
    demo.restart_redis()
    base = count(page, "sessions")
    page.wait("document.querySelector('[data-widget=sessions]')"
              ".dataset.count > %d" % (base + 3), 20,
              "sessions after Redis restarted")
    page.wait("document.querySelector('[data-widget=bandwidth]')"
              ".dataset.count > %d" % (count(page, "bandwidth") + 3), 20)
    assert status(page) == "live"
