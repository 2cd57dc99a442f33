#!/usr/bin/python3
"""make demo: redis-server, nginx with the Pulse module, pulse-publisher,
a generator of dashboard events, a login and job service, and the live
dashboard (build/demo-www, built by `make demo-ui`), all local. Ctrl-C
stops everything it started.

Two tenants, acme and globex, each with its own devices. The generator
writes what backends would:
- PUBLISH demo:<tenant>:<channel>:<event> (Pub/Sub) for bandwidth samples
  and job progress;
- XADD demo:events (a Stream: tenant, widget, event, data fields) for
  RADIUS sessions and faults, which must survive an nginx restart.
pulse-publisher turns both into publishes on /internal/pub/<tenant>.<channel>
(the Stream entries with ids derived from the entry ids). The page logs in
(a JWT in the pulse_token cookie, its tenant claim picks the channel
group) and subscribes with pulse.js; job buttons are pulse.v1 commands
that nginx forwards to the job service here."""

import argparse
import http.client
import http.server
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WWW = os.path.join(ROOT, "build", "demo-www")

TENANTS = {
    "acme": {"name": "Acme Networks",
             "ifaces": ["ge-0/0/0", "ge-0/0/1", "xe-1/0/0", "xe-1/0/1"],
             "nas": ["bras-east-1", "bras-west-2"], "pool": "100.64"},
    "globex": {"name": "Globex Telecom",
               "ifaces": ["et-0/0/0", "et-0/0/1", "ae0", "ae1"],
               "nas": ["gx-pe-1", "gx-pe-2"], "pool": "10.77"},
}
CHANNELS = ["bandwidth", "sessions", "faults", "jobs"]
FAULTS = [("critical", "LINK_DOWN", "link down"),
          ("major", "BGP_PEER_DOWN", "BGP session to 192.0.2.7 dropped"),
          ("minor", "HIGH_CPU", "routing engine CPU above 85%"),
          ("warning", "FAN_SPEED", "fan tray 1 speed degraded"),
          ("major", "OPTIC_RX_LOW", "optical rx power below threshold")]
TOKEN_LIFETIME = 12 * 3600

PUBLISHER_YAML = """
nginx:
  host: 127.0.0.1
  port: %d
  publish_path: /internal/pub/{channel}
redis:
  host: 127.0.0.1
  port: %d
sources:
  - name: live
    type: pubsub
    patterns: ["demo:*:*:*"]
    target: "{1}.{2}"
    event: "{3}"
  - name: events
    type: stream
    keys: [demo:events]
    target: "{tenant}.{widget}"
    event_field: event
"""


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Backend:
    """What a backend does: PUBLISH and XADD to Redis."""

    def __init__(self, redis_port):
        import redis
        self.r = redis.Redis(port=redis_port)

    def publish(self, tenant, channel, event, payload):
        self.r.publish("demo:%s:%s:%s" % (tenant, channel, event),
                       json.dumps(payload))

    def append(self, tenant, channel, event, payload):
        self.r.xadd("demo:events", {"tenant": tenant, "widget": channel,
                                    "event": event,
                                    "data": json.dumps(payload)},
                    maxlen=10000, approximate=True)


class Jobs:
    """The jobs of every tenant, advanced by the generator and steered by
    pulse.v1 commands (cancel, pause, resume) that nginx forwards here."""

    def __init__(self):
        self.lock = threading.Lock()
        self.jobs = {t: {} for t in TENANTS}
        self.changed = []  # (tenant, job) to publish at once

    def command(self, tenant, cmd):
        """(status, reply) for a command from the page."""
        if tenant not in self.jobs:
            return 403, {"error": "unknown tenant"}
        if not isinstance(cmd, dict) or cmd.get("action") not in (
                "cancel", "pause", "resume"):
            return 400, {"error": "action must be cancel, pause or resume"}
        with self.lock:
            job = self.jobs[tenant].get(cmd.get("job"))
            if job is None:
                return 404, {"error": "no job %s" % cmd.get("job")}
            want = {"cancel": "cancelled", "pause": "paused",
                    "resume": "running"}[cmd["action"]]
            allowed = {"cancel": ("running", "paused"), "pause": ("running",),
                       "resume": ("paused",)}[cmd["action"]]
            if job["state"] not in allowed:
                return 409, {"error": "job %s is %s" % (job["job"],
                                                        job["state"])}
            job["state"] = want
            self.changed.append((tenant, dict(job)))
            return 200, dict(job)


def api_handler(jobs, key):
    import jwt

    class Api(http.server.BaseHTTPRequestHandler):
        def reply(self, status, obj, headers=()):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            try:
                return json.loads(self.rfile.read(n) or b"{}")
            except ValueError:
                return None

        def tenant(self):
            for part in (self.headers.get("Cookie") or "").split(";"):
                k, _, v = part.strip().partition("=")
                if k == "pulse_token":
                    try:
                        return jwt.decode(v, key, algorithms=["HS256"])[
                            "tenant"]
                    except jwt.InvalidTokenError:
                        return None
            return None

        def do_GET(self):
            if self.path == "/api/tenants":
                return self.reply(200, [{"id": t, "name": v["name"]}
                                        for t, v in TENANTS.items()])
            if self.path == "/api/whoami":
                t = self.tenant()
                if not t:
                    return self.reply(401, {"error": "not logged in"})
                return self.reply(200, {"tenant": t,
                                        "name": TENANTS[t]["name"]})
            self.reply(404, {"error": "not found"})

        def do_POST(self):
            if self.path == "/api/login":
                b = self.body() or {}
                t = b.get("tenant")
                if t not in TENANTS:
                    return self.reply(400, {"error": "unknown tenant"})
                now = int(time.time())
                tok = jwt.encode({"sub": "demo@" + t, "tenant": t, "iat": now,
                                  "exp": now + TOKEN_LIFETIME,
                                  # a command's channel counts as
                                  # publishing; /ws itself cannot publish
                                  "channels": {"subscribe": CHANNELS,
                                               "publish": ["jobs"]}},
                                 key, algorithm="HS256")
                return self.reply(200, {"tenant": t,
                                        "name": TENANTS[t]["name"]},
                                  [("Set-Cookie", "pulse_token=%s; Path=/; "
                                    "HttpOnly; SameSite=Strict; Max-Age=%d"
                                    % (tok, TOKEN_LIFETIME))])
            if self.path == "/api/logout":
                return self.reply(200, {}, [("Set-Cookie", "pulse_token=; "
                                             "Path=/; Max-Age=0")])
            if self.path == "/api/jobs/command":
                # from nginx (pulse_websocket_upstream): the identity is the
                # tenant of the socket's verified token
                status, out = jobs.command(
                    self.headers.get("X-Pulse-Identity"), self.body())
                return self.reply(status, out)
            self.reply(404, {"error": "not found"})

        def log_message(self, *a):
            pass
    return Api


class Generator:
    """Dashboard events for every tenant, one round per tick."""

    def __init__(self, backend, jobs):
        self.b = backend
        self.jobs = jobs
        self.rate = {t: {i: random.uniform(2e8, 8e8) for i in v["ifaces"]}
                     for t, v in TENANTS.items()}
        self.sessions = {t: {} for t in TENANTS}
        self.tick = 0

    def publish_changed(self):
        with self.jobs.lock:
            changed, self.jobs.changed = self.jobs.changed, []
        for tenant, job in changed:
            self.b.publish(tenant, "jobs", "progress", job)

    def round(self):
        self.tick += 1
        for t, spec in TENANTS.items():
            self.round_of(t, spec, time.time())

    def round_of(self, t, spec, now):
        for i in spec["ifaces"]:
            r = self.rate[t][i] = max(1e7, min(1e10, self.rate[t][i]
                                               * random.uniform(0.85, 1.18)))
            self.b.publish(t, "bandwidth", "sample", {
                "iface": i, "ts": now, "in_bps": int(r),
                "out_bps": int(r * random.uniform(0.3, 0.9))})
        sessions = self.sessions[t]
        if random.random() < 0.4 or len(sessions) < 3:
            sid = "%08x" % random.getrandbits(32)
            sessions[sid] = {
                "session": sid, "user": "user%03d@%s.example"
                % (random.randint(1, 500), t), "nas": random.choice(
                    spec["nas"]), "ip": "%s.%d.%d" % (
                    spec["pool"], random.randint(0, 255),
                    random.randint(1, 254)), "octets": 0, "start": now}
            self.b.append(t, "sessions", "start",
                          dict(sessions[sid], kind="start", ts=now))
        for sid in list(sessions)[:4]:
            s = sessions[sid]
            s["octets"] += random.randint(10 ** 5, 10 ** 7)
            if random.random() < 0.08 and len(sessions) > 3:
                self.b.append(t, "sessions", "stop",
                              dict(s, kind="stop", ts=now))
                del sessions[sid]
            else:
                self.b.append(t, "sessions", "update",
                              dict(s, kind="update", ts=now))
        if random.random() < 0.12:
            sev, code, text = random.choice(FAULTS)
            self.b.append(t, "faults", sev, {
                "ts": now, "severity": sev, "code": code,
                "device": random.choice(spec["nas"]), "text": text})
        self.advance_jobs(t, now)

    def advance_jobs(self, t, now):
        with self.jobs.lock:
            jobs = self.jobs.jobs[t]
            if not any(j["state"] in ("running", "paused")
                       for j in jobs.values()) or random.random() < 0.02:
                jid = "backup-%d" % self.tick
                jobs[jid] = {"job": jid, "percent": 0, "state": "running"}
            out = []
            for jid, j in list(jobs.items()):
                if j["state"] == "running":
                    j["percent"] = min(100, j["percent"]
                                       + random.randint(1, 4))
                    if j["percent"] == 100:
                        j["state"] = "done"
                    out.append(dict(j, ts=now))
                elif j["state"] in ("done", "cancelled"):
                    del jobs[jid]
        for j in out:
            self.b.publish(t, "jobs", "progress", j)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--module", default=os.path.join(
        ROOT, "build", "ngx_http_pulse_module.so"))
    ap.add_argument("--publisher", default=os.path.join(
        ROOT, "build", "pulse-publisher"))
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    ap.add_argument("--port", type=int, default=int(os.environ.get(
        "PULSE_DEMO_PORT", "8080")))
    ap.add_argument("--seconds", type=float, default=float("inf"),
                    help="stop after this long (tests)")
    ap.add_argument("--tick", type=float, default=0.5,
                    help="seconds between rounds of events (benchmarks)")
    a = ap.parse_args()
    import redis
    if not os.path.exists(os.path.join(WWW, "app.js")):
        sys.exit("demo: the dashboard is not built: run `make demo-ui`")

    prefix = tempfile.mkdtemp(prefix="pulse-demo-")
    key = secrets.token_hex(32)
    with open(os.path.join(prefix, "jwt.key"), "w") as f:
        f.write(key)
    jobs = Jobs()
    api = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                          api_handler(jobs, key))
    api.daemon_threads = True
    threading.Thread(target=api.serve_forever, daemon=True).start()

    with open(os.path.join(ROOT, "conf.d", "demo.conf")) as f:
        conf = f.read()
    conf = (conf.replace("@PREFIX@", prefix).replace("@ROOT@", ROOT)
            .replace("@PORT@", str(a.port)).replace("@MODULE@", a.module)
            .replace("@API@", str(api.server_address[1])))
    if os.geteuid() == 0:
        conf = "user root;\n" + conf
    conf_path = os.path.join(prefix, "nginx.conf")
    with open(conf_path, "w") as f:
        f.write(conf)
    redis_port = free_port()
    while redis_port == a.port:
        redis_port = free_port()
    # Each child has its own session: Ctrl-C signals the terminal's whole
    # foreground process group, and only this script must get it. It then
    # stops them in order (publisher, nginx, Redis), so that no process
    # loses its peer while it still works.
    procs = []
    procs.append(subprocess.Popen(
        [a.redis_server, "--port", str(redis_port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", prefix],
        stdout=subprocess.DEVNULL, start_new_session=True))
    env = dict(os.environ)
    if os.environ.get("PULSE_NGINX_PRELOAD"):  # a sanitizer-built module
        env["LD_PRELOAD"] = os.environ["PULSE_NGINX_PRELOAD"]
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    nginx = subprocess.Popen([a.nginx, "-p", prefix, "-c", conf_path,
                              "-e", os.path.join(prefix, "error.log")],
                             env=env, start_new_session=True)
    procs.append(nginx)
    yaml_path = os.path.join(prefix, "publisher.yaml")
    with open(yaml_path, "w") as f:
        f.write(PUBLISHER_YAML % (a.port, redis_port))
    stopping = []

    def stop(*_):
        stopping.append(1)
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    try:
        deadline = time.time() + 15
        while True:
            if nginx.poll() is not None:
                sys.exit("demo: nginx failed to start (is port %d free? "
                         "use PULSE_DEMO_PORT=...)" % a.port)
            try:
                c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=1)
                c.request("GET", "/pulse_status")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("demo: nginx did not come up")
            time.sleep(0.1)
        time.sleep(0.3)  # an nginx that could not bind has exited by now
        if nginx.poll() is not None:
            sys.exit("demo: nginx failed to start (is port %d free? "
                     "use PULSE_DEMO_PORT=...)" % a.port)
        backend = Backend(redis_port)
        while True:
            try:
                backend.r.ping()
                break
            except redis.exceptions.ConnectionError:
                if procs[0].poll() is not None or time.time() > deadline:
                    sys.exit("demo: redis-server did not start")
                time.sleep(0.1)
        procs.append(subprocess.Popen([a.publisher, "-c", yaml_path],
                                      start_new_session=True))
        while backend.r.execute_command("PUBSUB", "NUMPAT") < 1:
            if procs[-1].poll() is not None:
                sys.exit("demo: pulse-publisher exited")
            if time.time() > deadline:
                sys.exit("demo: pulse-publisher did not subscribe")
            time.sleep(0.1)
        print("\nPulse demo running: open http://127.0.0.1:%d/\n"
              "  status: http://127.0.0.1:%d/pulse_status\n"
              "  redis: 127.0.0.1:%d\n"
              "  files: %s\n"
              "Ctrl-C stops it.\n" % (a.port, a.port, redis_port, prefix),
              flush=True)
        gen = Generator(backend, jobs)
        redis_down = False
        stop_at = time.time() + a.seconds
        next_round = time.time()
        while time.time() < stop_at:
            now = time.time()
            try:
                if now >= next_round:
                    next_round = max(next_round + a.tick, now)
                    gen.round()
                gen.publish_changed()  # a command's effect shows at once
                if redis_down:
                    print("demo: redis is back", flush=True)
                    redis_down = False
            except redis.exceptions.ConnectionError as e:
                # what a backend would do: log, and go on with new events
                if not redis_down:
                    print("demo: redis unavailable (%s); retrying" % e,
                          flush=True)
                    redis_down = True
            time.sleep(min(0.05, max(0.0, next_round - time.time())))
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut the shutdown short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for p in reversed(procs):
            p.send_signal(signal.SIGQUIT if p is nginx else signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        api.shutdown()
        shutil.rmtree(prefix, ignore_errors=True)
        print("demo: stopped")


if __name__ == "__main__":
    main()
