"""Fixtures: a real nginx with the built module (or nchan), redis-server,
and the sidecar; each test module brings its own nginx.conf template.

Teardown fails the test when nginx's error log has an [alert], an [emerg]
after startup, a sanitizer report or a worker that "exited on signal"
(nginx-tests / nginx-otel style)."""

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def pytest_addoption(parser):
    parser.addoption("--nginx", default="/usr/sbin/nginx")
    parser.addoption("--module",
                     default=os.path.join(ROOT, "build",
                                          "ngx_http_pulse_module.so"))
    parser.addoption("--publisher",
                     default=os.path.join(ROOT, "build", "pulse-publisher"))
    parser.addoption("--migrate",
                     default=os.path.join(ROOT, "build", "pulse-migrate"))
    parser.addoption("--redis-server", default="/usr/bin/redis-server")
    parser.addoption("--nchan-module",
                     default="/usr/lib/nginx/modules/ngx_nchan_module.so")
    parser.addoption("--preload", default="",
                     help="LD_PRELOAD for nginx only (the ASan/UBSan "
                          "runtimes for a sanitized module)")


def _listen_ports():
    """Ports below the kernel's ephemeral range: an outgoing connection
    (a test's client, nginx's proxy) never takes one of them between our
    check and nginx's bind, as it can take a port that bind(0) gave."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = max(low, 12000)
    ports = list(range(10000, top))
    random.shuffle(ports)
    return iter(ports)


_PORTS = _listen_ports()


def free_port():
    """A port nothing listens on, never handed out twice in a run."""
    for port in _PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port left below the ephemeral range")


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


# A line of the sidecar's stderr when it is not under journald:
# "2026-12-02T19:30:00.123Z publisher: message" (publisher/log.h).
PUBLISHER_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (publisher: .*)")


def module_env(request):
    """The environment for running nginx with the module under test: the
    sanitizer runtimes preloaded when it is the ASan build (make asan)."""
    env = dict(os.environ)
    preload = request.config.getoption("--preload")
    if preload:
        env["LD_PRELOAD"] = preload
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    return env


def publisher_lines(stderr):
    """The sidecar's stderr lines without their timestamps. Every line must
    carry one: an unstamped line is a message that bypassed the log."""
    out = []
    for line in stderr.splitlines():
        m = PUBLISHER_LINE.fullmatch(line)
        assert m, "unstamped publisher line: %r" % line
        out.append(m.group(1))
    return out


# A leak report whose allocation stack has no frame of ours (the module
# .so, lib/pulse, ngx_module) is nginx's own: Debian's nginx never frees
# each worker's connection and event arrays (ngx_event_process_init, 8192
# connections: 1.9 MB and twice 768 KB) or the master's init cycle pool
# (ngx_create_pool in main) before exit. nginx's frames are static
# functions without names in the stripped binary, so LSan's suppressions
# (lsan.supp, which names what it can) cannot single them out without
# hiding leaks of ours too. A connection we failed to close would show as
# nginx's "open socket left" alert instead, which fails the test.
OURS = re.compile(r"ngx_http_pulse_module|/lib/pulse/|/ngx_module/|pulse::")


def nginx_leaks_removed(report):
    if "LeakSanitizer" not in report:
        return report
    blocks = re.split(r"\n(?=(?:Direct|Indirect) leak of)", report)
    kept = [b for b in blocks[1:] if OURS.search(b.split("\n\n")[0])]
    if not kept:
        return ""
    return blocks[0] + "\n" + "\n".join(kept)


BAD_LOG = re.compile(r"\[alert\]|\[crit\]|\[emerg\]|Sanitizer|runtime error:|"
                     r"exited on signal")


class Nginx:
    """One nginx instance: master_process on, two workers, its own prefix."""

    def __init__(self, binary, module, prefix, http_conf, flavor="pulse",
                 workers=2, globals_conf="", shm=None, preload=""):
        self.binary = binary
        self.env = dict(os.environ)
        if preload:
            # Leaks are reported (at each process's exit) but for nginx's
            # own allocations, which lsan.supp lists with their reasons.
            self.env["LD_PRELOAD"] = preload
            self.env["ASAN_OPTIONS"] = "detect_leaks=1:log_path=" + \
                os.path.join(prefix, "logs", "asan")
            self.env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0:fast_unwind_on_malloc=0" \
                % os.path.join(HERE, "lsan.supp")
        self.module = module
        self.prefix = prefix
        self.flavor = flavor
        self.port = free_port()
        self.workers = workers
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        self.error_log = os.path.join(prefix, "logs", "error.log")
        self.conf_path = os.path.join(prefix, "nginx.conf")
        self.allowed = []  # regexes of log lines a test expects
        self.http_conf = http_conf
        self.globals_conf = globals_conf
        self.shm = shm
        self.proc = None
        self.write_conf()

    def write_conf(self, http_conf=None):
        if http_conf is not None:
            self.http_conf = http_conf
        body = self.http_conf.replace("{port}", str(self.port))
        if self.flavor == "nchan":
            body = body.replace("pulse_", "nchan_")
        shm = ""
        if self.shm:
            shm = "%s_shared_memory_size %s;" % (self.flavor, self.shm)
        # Workers as the user running the tests (root in CI), so that they
        # can write the per-test prefix under pytest's private temp dir.
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = f"""
load_module {self.module};
{user}
worker_processes {self.workers};
daemon off;
master_process on;
pid {self.prefix}/nginx.pid;
error_log {self.error_log} info;
worker_rlimit_nofile 20000;
{self.globals_conf}
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {self.prefix}/body;
    proxy_temp_path {self.prefix}/proxy;
    fastcgi_temp_path {self.prefix}/fastcgi;
    uwsgi_temp_path {self.prefix}/uwsgi;
    scgi_temp_path {self.prefix}/scgi;
    {shm}
    {body}
}}
"""
        with open(self.conf_path, "w") as f:
            f.write(conf)

    def cmd(self, *args, log=None):
        return [self.binary, "-p", self.prefix, "-c", self.conf_path,
                "-e", log or self.error_log] + list(args)

    def test_config(self):
        # Its own log: the [emerg] of a config rejected on purpose is not a
        # running server's problem.
        return subprocess.run(
            self.cmd("-t", log=os.path.join(self.prefix, "logs", "t.log")),
            capture_output=True, text=True, env=self.env)

    def start(self):
        self.proc = subprocess.Popen(self.cmd(), env=self.env,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        pid_file = os.path.join(self.prefix, "nginx.pid")

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("nginx exited: "
                                     + self.proc.stderr.read().decode())
            if not os.path.exists(pid_file):
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            except OSError:
                return False
            return len(self.worker_pids()) >= self.workers
        wait_for(up, 15, "nginx to start")
        return self

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def worker_pids(self):
        if self.proc is None:
            return []
        pids = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % p) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid != self.proc.pid:
                    continue
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    if b"worker process" in f.read():
                        pids.append(int(p))
            except (OSError, ValueError, IndexError):
                pass
        return pids

    def connections_per_worker(self):
        """Established client connections on this server's port, by worker
        pid (from ss)."""
        out = subprocess.run(
            ["ss", "-Htnp", "state", "established", "sport", "=",
             ":%d" % self.port], capture_output=True, text=True).stdout
        counts = {}
        for m in re.finditer(r"pid=(\d+)", out):
            pid = int(m.group(1))
            counts[pid] = counts.get(pid, 0) + 1
        return counts

    def reload(self):
        old = set(self.worker_pids())
        self.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(set(self.worker_pids()) - old) >= self.workers,
                 15, "new workers after reload")

    def log(self):
        text = ""
        logs = os.path.join(self.prefix, "logs")
        for name in sorted(os.listdir(logs)):
            # error.log, plus sanitizer reports (asan.<pid>)
            if name == "error.log" or name.startswith("asan"):
                try:
                    with open(os.path.join(logs, name), errors="replace") as f:
                        body = f.read()
                except OSError:
                    continue
                text += nginx_leaks_removed(body) if name.startswith("asan") \
                    else body
        return text

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def bad_log_lines(self):
        bad = []
        for line in self.log().splitlines():
            if BAD_LOG.search(line) and not any(
                    re.search(a, line) for a in self.allowed):
                bad.append(line)
        return bad


@pytest.fixture(scope="module")
def nginx_factory(request, tmp_path_factory):
    """Makes Nginx instances; stops them and checks their logs at the end
    of the module."""
    made = []

    def make(http_conf, flavor="pulse", start=True, **kw):
        module = (request.config.getoption("--module") if flavor == "pulse"
                  else request.config.getoption("--nchan-module"))
        prefix = str(tmp_path_factory.mktemp(flavor))
        preload = (request.config.getoption("--preload")
                   if flavor == "pulse" else "")
        n = Nginx(request.config.getoption("--nginx"), module, prefix,
                  http_conf, flavor, preload=preload, **kw)
        made.append(n)
        if start:
            n.start()
        return n

    yield make
    problems = []
    for n in made:
        n.stop()
        bad = n.bad_log_lines()
        if bad:
            problems.append("%s (%s):\n  %s" % (n.prefix, n.flavor,
                                                "\n  ".join(bad[:20])))
    if problems:
        pytest.fail("error log problems:\n" + "\n".join(problems))


def side_by_side(nginx_factory, config, **kw):
    """nchan and Pulse on the same config (the directive prefix aside)."""
    return {flavor: nginx_factory(config, flavor=flavor, **kw)
            for flavor in ("nchan", "pulse")}


def channel_info(n, path):
    """A publisher location's channel info as JSON; None for a 404."""
    r = requests.get(n.url(path), headers={"Accept": "text/json"})
    return r.json() if r.status_code == 200 else None


@pytest.fixture(scope="module")
def nginx(request, nginx_factory):
    """The module's NGINX_CONFIG under Pulse."""
    return nginx_factory(getattr(request.module, "NGINX_CONFIG"))


@pytest.fixture(scope="module")
def redis_server(request, tmp_path_factory):
    binary = request.config.getoption("--redis-server")
    if not shutil.which(binary):
        pytest.fail("redis-server not found at " + binary)
    d = str(tmp_path_factory.mktemp("redis"))
    port = free_port()
    sock = os.path.join(d, "redis.sock")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind",
                             "127.0.0.1", "--unixsocket", sock,
                             "--save", "", "--appendonly", "no",
                             "--dir", d], stdout=subprocess.DEVNULL)

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False
    wait_for(up, 10, "redis-server")
    yield {"port": port, "unix": sock, "proc": proc}
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (browser.py), one per test module."""
    from browser import Browser  # not at import: browser.py imports us
    b = Browser()
    yield b
    b.close()


@pytest.fixture
def page(browser, request):
    """The browser, for one test: a screenshot of the page after it
    (build/screenshots/<test>.png), and no uncaught error in the page."""
    yield browser
    try:
        browser.screenshot(re.sub(r"[^\w.-]", "_", request.node.name) + ".png")
        errors = browser.errors()
    except AssertionError:
        errors = []
    # a failed WebSocket or EventSource is logged by Chromium itself; the
    # page's own code must throw nothing
    assert not [e for e in errors if e.startswith("pageerror")], errors
