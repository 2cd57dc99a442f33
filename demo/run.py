#!/usr/bin/python3
"""make demo: redis-server, nginx with the Pulse module, pulse-publisher,
a generator of dashboard events and a live page, all local. Ctrl-C stops
everything it started.

The generator PUBLISHes to Redis channels demo:<channel>:<event> (bandwidth
samples, RADIUS session start/update/stop, network faults, job progress);
pulse-publisher maps them (pattern demo:*:*, target {1}, event {2}) to
publishes on nginx; the page subscribes with EventSource."""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Publisher:
    """What a backend does: PUBLISH to Redis."""

    def __init__(self, redis_port):
        import redis
        self.r = redis.Redis(port=redis_port)

    def post(self, channel, payload, event):
        self.r.publish("demo:%s:%s" % (channel, event), json.dumps(payload))


PUBLISHER_YAML = """
nginx:
  host: 127.0.0.1
  port: %d
  publish_path: /pub/{channel}
redis:
  host: 127.0.0.1
  port: %d
sources:
  - name: demo
    type: pubsub
    patterns: ["demo:*:*"]
    target: "{1}"
    event: "{2}"
"""


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


IFACES = ["ge-0/0/0", "ge-0/0/1", "xe-1/0/0", "xe-1/0/1"]
NAS = ["bras-east-1", "bras-west-2"]
FAULTS = [("critical", "LINK_DOWN", "link down"),
          ("major", "BGP_PEER_DOWN", "BGP session to 192.0.2.7 dropped"),
          ("minor", "HIGH_CPU", "routing engine CPU above 85%"),
          ("warning", "FAN_SPEED", "fan tray 1 speed degraded"),
          ("major", "OPTIC_RX_LOW", "optical rx power below threshold")]


def generate(pub, stop_at):
    rate = {i: random.uniform(2e8, 8e8) for i in IFACES}
    sessions = {}
    jobs = {}
    seq = 0
    tick = 0
    while time.time() < stop_at:
        tick += 1
        now = time.time()
        for i in IFACES:  # bandwidth, every 0.5 s
            rate[i] = max(1e7, min(1e10, rate[i] * random.uniform(0.85, 1.18)))
            pub.post("bandwidth", {"iface": i, "ts": now,
                                   "in_bps": int(rate[i]),
                                   "out_bps": int(rate[i] * random.uniform(
                                       0.3, 0.9))}, "sample")
        if random.random() < 0.6 or len(sessions) < 3:
            seq += 1
            sid = "%08x" % random.getrandbits(32)
            sessions[sid] = {"session": sid, "user": "user%03d@isp.example"
                             % random.randint(1, 500),
                             "nas": random.choice(NAS),
                             "ip": "100.64.%d.%d" % (random.randint(0, 255),
                                                     random.randint(1, 254)),
                             "octets": 0, "start": now}
            pub.post("sessions", dict(sessions[sid], kind="start"), "start")
        for sid in list(sessions)[:6]:
            s = sessions[sid]
            s["octets"] += random.randint(10 ** 5, 10 ** 7)
            if random.random() < 0.12:
                pub.post("sessions", dict(s, kind="stop"), "stop")
                del sessions[sid]
            else:
                pub.post("sessions", dict(s, kind="update"), "update")
        if random.random() < 0.15:
            sev, code, text = random.choice(FAULTS)
            pub.post("faults", {"ts": now, "severity": sev, "code": code,
                                "device": random.choice(NAS),
                                "text": text}, sev)
        if not jobs or random.random() < 0.05:
            jid = "backup-%d" % tick
            jobs[jid] = 0
        for jid in list(jobs):
            jobs[jid] = min(100, jobs[jid] + random.randint(1, 7))
            pub.post("jobs", {"job": jid, "percent": jobs[jid],
                              "state": "done" if jobs[jid] == 100
                              else "running"}, "progress")
            if jobs[jid] == 100:
                del jobs[jid]
        time.sleep(0.5)


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
    a = ap.parse_args()

    prefix = tempfile.mkdtemp(prefix="pulse-demo-")
    with open(os.path.join(ROOT, "conf.d", "demo.conf")) as f:
        conf = f.read()
    conf = (conf.replace("@PREFIX@", prefix).replace("@ROOT@", ROOT)
            .replace("@PORT@", str(a.port)).replace("@MODULE@", a.module))
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
        procs.append(subprocess.Popen([a.publisher, "-c", yaml_path],
                                      start_new_session=True))
        pub = Publisher(redis_port)
        while pub.r.execute_command("PUBSUB", "NUMPAT") < 1:
            if procs[-1].poll() is not None:
                sys.exit("demo: pulse-publisher exited")
            if time.time() > deadline:
                sys.exit("demo: pulse-publisher did not subscribe")
            time.sleep(0.1)
        print("\nPulse demo running: open http://127.0.0.1:%d/\n"
              "  status: http://127.0.0.1:%d/pulse_status\n"
              "  raw stream: curl -N -H 'Accept: text/event-stream' "
              "http://127.0.0.1:%d/sub/faults\n"
              "Ctrl-C stops it.\n" % (a.port, a.port, a.port), flush=True)
        generate(pub, time.time() + a.seconds)
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
        shutil.rmtree(prefix, ignore_errors=True)
        print("demo: stopped")


if __name__ == "__main__":
    main()
