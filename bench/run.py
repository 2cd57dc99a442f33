#!/usr/bin/python3
"""make bench: Pulse against nchan, side by side, same load, same machine.

Each scenario runs against both servers in alternation (pulse, nchan,
pulse, nchan, ...) so that machine drift hits both; the table shows the
median of each metric and the Pulse/nchan ratio. Server CPU is read from
/proc of the nginx workers, so the load generator's own cost is excluded.
Results: bench/results/<date>-<scenario>.md (+ .png), and
bench/results/latest.md with every scenario.

The fan-out and latency scenarios also run build/floor (bench/floor.cpp):
a bare server that does nothing per delivery but one send(2). Its figures
are the best any server writing one frame per delivery can reach on the
machine, and floor/nchan bounds what Pulse/nchan can be."""

import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LOADGEN = os.path.join(ROOT, "build", "loadgen")
FLOOR = os.path.join(ROOT, "build", "floor")
NCHAN = "/usr/lib/nginx/modules/ngx_nchan_module.so"
TICK = os.sysconf("SC_CLK_TCK")

# What every benchmark server shares: 2 workers, no access log.
CONF_HEAD = """
load_module {module};
{user}
worker_processes 2;
worker_rlimit_nofile 40000;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 30000; }}
http {{
    access_log off;
"""

CONF = CONF_HEAD + """    # the load generator keeps its publishing connections for the whole
    # run; nginx's default (1000 requests) would close them mid-run
    keepalive_requests 10000000;
    client_body_temp_path {prefix}/body;
    X_shared_memory_size 256m;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=8192;
        location ~ ^/pub/(.+)$ {{
            X_publisher; X_channel_id $1;
            X_message_buffer_length 200;
        }}
        location ~ ^/sub/(.+)$ {{
            X_subscriber; X_channel_id $1;
            X_subscriber_first_message newest;
        }}
        location = /pulse_status {{ X_stub_status; }}
{extra}    }}
}}
"""

# What the metrics-cost run adds to CONF (Pulse only).
METRICS_LOCATION = "        location = /metrics { pulse_metrics; }\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, nginx, module, flavor, template=None, **fields):
        """nginx with `template` (CONF by default; `fields` fill its other
        {names}), X_ directives named for the flavor."""
        self.flavor = flavor
        self.prefix = tempfile.mkdtemp(prefix="bench-%s-" % flavor)
        self.port = free_port()
        fields.setdefault("extra", "")
        conf = (template or CONF).format(
            module=module, prefix=self.prefix, port=self.port,
            user="user root;" if os.geteuid() == 0 else "", **fields)
        conf = conf.replace("X_", flavor + "_")
        path = os.path.join(self.prefix, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen([nginx, "-p", self.prefix, "-c", path,
                                      "-e", self.prefix + "/error.log"])
        self.wait_ready()

    def wait_ready(self):
        """Until the port answers and both worker processes exist."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                if len(self.workers()) == 2:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("%s did not start" % self.flavor)

    def workers(self):
        pids = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open("/proc/%s/stat" % p) as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == \
                                self.proc.pid:
                            pids.append(int(p))
                except (OSError, ValueError):
                    pass
        return pids

    def cpu_seconds(self):
        total = 0
        for p in self.workers():
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / TICK

    def pss_kb(self):
        total = 0
        for p in [self.proc.pid] + self.workers():
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        return total

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)


class Floor(Server):
    """build/floor with 2 processes, measured like the nginx servers (its
    processes are the main process's children, as nginx's workers are)."""

    def __init__(self, throttle_ms=0):
        self.flavor = "floor"
        self.prefix = None
        self.port = free_port()
        self.proc = subprocess.Popen([FLOOR, "--port", str(self.port),
                                      "--workers", "2", "--throttle",
                                      str(throttle_ms)])
        self.wait_ready()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def loadgen(*args):
    return [LOADGEN] + [str(a) for a in args]


def start_subs(srv, **kw):
    kw.setdefault("seconds", 90)  # a run that loses messages still ends
    args = ["sub", "--port", srv.port]
    for k, v in kw.items():
        args += ["--" + k, v]
    p = subprocess.Popen(loadgen(*args), stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError("subscribers not ready: %r" % line)
    return p


def finish_subs(p, timeout=100):
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate()
    return json.loads(out.strip().splitlines()[-1])


def publish(srv, **kw):
    args = ["pub", "--port", srv.port]
    for k, v in kw.items():
        args += ["--" + k, v]
    out = subprocess.run(loadgen(*args), capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------ scenarios

def fanout(srv, q, transport="sse"):
    subs, chans, per = (2000, 20, 10) if q else (10000, 100, 20)
    s = start_subs(srv, subs=subs, channels=chans, sources=4, expect=per,
                   transport=transport)
    time.sleep(0.5)
    cpu0 = srv.cpu_seconds()
    t0 = time.monotonic()
    pub = publish(srv, channels=chans, messages=chans * per, window=4)
    r = finish_subs(s)
    wall = time.monotonic() - t0
    cpu = srv.cpu_seconds() - cpu0
    return {"deliveries": r["deliveries"], "lost": r["lost"],
            "dup+ooo": r["duplicated"] + r["out_of_order"],
            "server CPU s": round(cpu, 3),
            "deliveries per server CPU s": round(r["deliveries"] / max(cpu, 0.01)),
            # the framing: EventSource raw (nchan) or chunked (Pulse)
            "wire bytes per delivery": round(
                r.get("bytes", 0) / max(r["deliveries"], 1), 1),
            "wall s": round(wall, 3),
            "publish errors": pub["answered"] - pub["status"].get("201", 0)}


def steady(srv, q):
    subs, chans, rate, secs = (2000, 10, 50, 4) if q else (10000, 10, 50, 10)
    s = start_subs(srv, subs=subs, channels=chans, sources=4,
                   expect=rate * secs // chans)
    time.sleep(0.5)
    publish(srv, channels=chans, messages=rate * secs, rate=rate, window=2)
    r = finish_subs(s)
    lat = r["latency_ms"]
    return {"deliveries": r["deliveries"], "lost": r["lost"],
            "p50 ms": lat.get("p50"), "p90 ms": lat.get("p90"),
            "p99 ms": lat.get("p99"), "p99.9 ms": lat.get("p999"),
            "max ms": lat.get("max"),
            "p99 ms, read by the client": r["read_latency_ms"].get("p99")}


def idle_memory(srv, q, transport="sse"):
    subs = 2000 if q else 10000
    time.sleep(0.3)
    before = srv.pss_kb()
    s = start_subs(srv, subs=subs, channels=100, sources=4,
                   transport=transport)
    time.sleep(1.5)
    after = srv.pss_kb()
    s.send_signal(signal.SIGTERM)
    finish_subs(s)
    return {"subscribers": subs,
            "PSS bytes per idle subscriber": round((after - before) * 1024 / subs)}


def publish_only(srv, q):
    n = 5000 if q else 30000
    cpu0 = srv.cpu_seconds()
    r = publish(srv, channels=100, messages=n, window=16)
    cpu = srv.cpu_seconds() - cpu0
    return {"publishes per s": round(r["per_second"]),
            "publishes per server CPU s": round(n / max(cpu, 0.01)),
            "publish errors": r["sent"] - r["status"].get("202", 0)}


def longpoll(srv, q):
    subs, chans, per = (500, 10, 5) if q else (2000, 20, 10)
    s = start_subs(srv, subs=subs, channels=chans, sources=2, expect=per,
                   transport="longpoll")
    time.sleep(1.0)
    cpu0 = srv.cpu_seconds()
    publish(srv, channels=chans, messages=chans * per, rate=50, window=2)
    r = finish_subs(s)
    cpu = srv.cpu_seconds() - cpu0
    return {"deliveries": r["deliveries"], "lost": r["lost"],
            "deliveries per server CPU s": round(r["deliveries"] / max(cpu, 0.01)),
            "p99 ms": r["latency_ms"].get("p99")}


def slow_consumer(srv, q):
    """One subscriber stops reading; the others' latency and nginx's memory
    must stay bounded."""
    subs, msgs = (200, 1200) if q else (300, 1500)
    stalled = socket.create_connection(("127.0.0.1", srv.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b"GET /sub/bench0 HTTP/1.1\r\nHost: b\r\n"
                    b"Accept: text/event-stream\r\n\r\n")
    s = start_subs(srv, subs=subs, channels=1, sources=2, expect=msgs)
    time.sleep(0.5)
    rss0 = srv.pss_kb()
    # 4 KiB each: 6 MiB for the stalled client, past Pulse's 4 MiB limit
    publish(srv, channels=1, messages=msgs, rate=200, window=2, size=4096)
    r = finish_subs(s)
    growth = srv.pss_kb() - rss0
    stalled.close()
    return {"others lost": r["lost"],
            "others p99 ms": r["latency_ms"].get("p99"),
            "nginx PSS growth KiB": growth,
            "sent to the stalled one KiB": msgs * 4}


# ------------------------------------------- end to end through Redis

class RedisAndPublisher:
    """redis-server plus pulse-publisher feeding `srv` from streams
    bench0..bench{n-1} (target {channel})."""

    def __init__(self, srv, channels, publisher):
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.port = free_port()
        while self.port == srv.port:
            self.port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        keys = ", ".join("bench%d" % c for c in range(channels))
        path = os.path.join(self.dir, "publisher.yaml")
        with open(path, "w") as f:
            f.write("nginx:\n  port: %d\n  publish_path: /pub/{channel}\n"
                    "redis:\n  port: %d\nsources:\n  - name: bench\n"
                    "    type: stream\n    keys: [%s]\n"
                    % (srv.port, self.port, keys))
        self.pub = subprocess.Popen([publisher, "-c", path],
                                    stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # connected and reading

    def stop(self):
        for p in (self.pub, self.redis):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def e2e(nginx, module, publisher, q):
    """Latency added by Redis + pulse-publisher over a direct POST, at
    1,000 events/s, and the publisher's sustained throughput."""
    subs, chans, rate, secs = (500, 10, 1000, 3) if q else (1000, 10, 1000, 5)
    out = {}
    for path in ("direct POST", "XADD -> pulse-publisher"):
        srv = Server(nginx, module, "pulse")
        rp = None
        try:
            if path != "direct POST":
                rp = RedisAndPublisher(srv, chans, publisher)
            s = start_subs(srv, subs=subs, channels=chans, sources=2,
                           expect=rate * secs // chans)
            time.sleep(0.5)
            if rp:
                publish(srv, port=rp.port, redis=1, channels=chans,
                        messages=rate * secs, rate=rate, window=4)
            else:
                publish(srv, channels=chans, messages=rate * secs, rate=rate,
                        window=4)
            r = finish_subs(s)
            out[path] = {"deliveries": r["deliveries"], "lost": r["lost"],
                         "p50 ms": r["latency_ms"].get("p50"),
                         "p99 ms": r["latency_ms"].get("p99")}
        finally:
            if rp:
                rp.stop()
            srv.stop()
    # throughput: as fast as Redis takes them, no subscribers
    n = 20000 if q else 100000
    srv = Server(nginx, module, "pulse")
    rp = RedisAndPublisher(srv, 10, publisher)
    try:
        t0 = time.monotonic()
        publish(srv, port=rp.port, redis=1, channels=10, messages=n,
                window=64)
        deadline = time.monotonic() + 120
        while published_count(srv) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        secs_taken = time.monotonic() - t0
    finally:
        rp.stop()
        srv.stop()
    out["throughput"] = {"events": n, "seconds": round(secs_taken, 2),
                         "events per s": round(n / secs_taken)}
    return out


def published_count(srv):
    try:
        with urllib.request.urlopen(
                "http://127.0.0.1:%d/pulse_status" % srv.port, timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("total published messages: "):
                    return int(line.rsplit(" ", 1)[1])
    except Exception:
        pass
    return 0


# name, function, headline metric, which way is better, runs the floor too
SCENARIOS = [
    ("fanout-sse", fanout, "deliveries per server CPU s", "higher", True),
    ("steady-latency-sse", steady, "p99 ms", "lower", True),
    ("idle-memory-sse", idle_memory, "PSS bytes per idle subscriber", "lower",
     False),
    ("publish-no-subscribers", publish_only, "publishes per server CPU s",
     "higher", False),
    ("fanout-longpoll", longpoll, "deliveries per server CPU s", "higher",
     False),
    ("fanout-websocket", lambda srv, q: fanout(srv, q, "ws"),
     "deliveries per server CPU s", "higher", True),
    ("fanout-websocket-meta", lambda srv, q: fanout(srv, q, "ws-meta"),
     "deliveries per server CPU s", "higher", True),
    ("idle-memory-websocket", lambda srv, q: idle_memory(srv, q, "ws"),
     "PSS bytes per idle subscriber", "lower", False),
    ("slow-consumer", slow_consumer, "nginx PSS growth KiB", "lower", False),
]


def metrics_cost(nginx, module, q, rounds):
    """Fan-out with and without a pulse_metrics location, alternating
    rounds; the scrape after each run must count what the load generator
    received."""
    lines = ["## metrics-cost (Pulse with and without `pulse_metrics`)\n",
             "| scenario | deliveries per server CPU s, off | on | on/off | "
             "deliveries counted / received |", "|---|---|---|---|---|"]
    ratios = {}
    for name, transport, label in (("fanout-websocket", "ws", "websocket"),
                                   ("fanout-sse", "sse", "eventsource")):
        got = {"off": [], "on": []}
        counted = []
        for _ in range(rounds):
            for mode in ("off", "on"):
                srv = Server(nginx, module, "pulse",
                             extra=METRICS_LOCATION if mode == "on" else "")
                try:
                    r = fanout(srv, q, transport)
                    got[mode].append(r)
                    if mode == "on":
                        time.sleep(1.2)  # every worker has reported
                        text = urllib.request.urlopen(
                            "http://127.0.0.1:%s/metrics" % srv.port,
                            timeout=5).read().decode()
                        key = 'pulse_deliveries_total{transport="%s"} ' \
                            % label
                        n = int(next(l for l in text.splitlines()
                                     if l.startswith(key)).split()[-1])
                        counted.append((n, r["deliveries"]))
                finally:
                    srv.stop()
        off = median_runs(got["off"])["deliveries per server CPU s"]
        on = median_runs(got["on"])["deliveries per server CPU s"]
        ratios[name] = (on, off)
        lines.append("| %s | %s | %s | %.3f | %s |" % (
            name, fmt(off), fmt(on), on / off if off else float("nan"),
            ", ".join("%d/%d" % c for c in counted)))
    lines.append("\nTarget: on/off >= 0.98 (metrics cost at most 2%).\n")
    return "\n".join(lines), ratios


def storm_run(srv, q, query):
    """The dashboard's shape: many viewers of a few hot widgets. 1,000
    publishes/s over 10 channels, 20 keys each; `query` paces the
    subscribers (empty: live)."""
    subs, chans, secs = (2000, 10, 4) if q else (10000, 10, 10)
    rate, keys = 1000, 20
    per = rate * secs // chans
    s = start_subs(srv, subs=subs, channels=chans, sources=4,
                   path="/sub/bench{c}" + query, last=per - 1,
                   seconds=secs + 4)
    time.sleep(0.5)
    cpu0 = srv.cpu_seconds()
    pub = publish(srv, channels=chans, messages=rate * secs, rate=rate,
                  window=4, keys=keys)
    r = finish_subs(s, timeout=secs + 30)
    cpu = srv.cpu_seconds() - cpu0
    lat = r["latency_ms"]
    return {"server CPU s": round(cpu, 3),
            "deliveries": r["deliveries"],
            "deliveries if every message went": subs * per,
            "subscribers holding every key's last value": r["current"],
            "subscribers": subs,
            "closed by the server": r["closed"],
            "p50 ms": lat.get("p50"), "p99 ms": lat.get("p99"),
            "max ms": lat.get("max"),
            "publish errors": pub["answered"] - pub["status"].get("201", 0)
            - pub["status"].get("202", 0)}


def storm(nginx, module, q, rounds):
    """nchan and Pulse live beside Pulse at throttle=1s, and the paced
    floor (one send per subscriber per second, nothing else), alternating."""
    runs = (("nchan, live", NCHAN, "nchan", ""),
            ("Pulse, live", module, "pulse", ""),
            ("Pulse, throttle=1s", module, "pulse", "?throttle=1s"),
            ("floor, throttle=1s", None, "floor", "?throttle=1s"))
    got = {name: [] for name, _, _, _ in runs}
    for _ in range(rounds):
        for name, mod, flavor, query in runs:
            srv = (Floor(throttle_ms=1000) if flavor == "floor"
                   else Server(nginx, mod, flavor))
            try:
                got[name].append(storm_run(srv, q, query))
            finally:
                srv.stop()
    med = {name: median_runs(r) for name, r in got.items()}
    names = [name for name, _, _, _ in runs]
    lines = ["## storm (%s subscribers, 10 channels, 1,000 keyed publishes/s "
             "over 20 keys per channel)\n" % fmt(med[names[0]]["subscribers"]),
             "| metric | %s |" % " | ".join(names),
             "|---|%s" % ("---|" * len(names))]
    for k in med[names[0]]:
        lines.append("| %s | %s |" % (k, " | ".join(fmt(med[n][k])
                                                    for n in names)))
    paced, nchan = med[names[2]]["server CPU s"], med[names[0]]["server CPU s"]
    floor = med[names[3]]["server CPU s"]
    ratio = paced / nchan if nchan else float("nan")
    lines.append("\nHeadline: server CPU s, Pulse throttle=1s / nchan live = "
                 "%.3f (target <= 0.1); the paced floor / nchan = %.3f, the "
                 "least any server that writes each subscriber once a second "
                 "can reach; Pulse / floor = %.2f. The latest value of every "
                 "key within 1 s + 50 ms: max latency %s ms, %s of %s "
                 "subscribers current.\n" % (
                     ratio, floor / nchan if nchan else float("nan"),
                     paced / floor if floor else float("nan"),
                     fmt(med[names[2]]["max ms"]),
                     fmt(med[names[2]][
                         "subscribers holding every key's last value"]),
                     fmt(med[names[2]]["subscribers"])))
    return "\n".join(lines), (paced, nchan)


def median_runs(runs):
    keys = runs[0].keys()
    out = {}
    for k in keys:
        vals = [r[k] for r in runs if isinstance(r.get(k), (int, float))]
        out[k] = statistics.median(vals) if vals else runs[0][k]
    return out


def fmt(v):
    if isinstance(v, float):
        return "%.3g" % v if abs(v) < 100 else "%d" % round(v)
    return str(v)


def publish_section(report, text, name):
    """Prints a report section, writes it to bench/results/`name`, and adds
    it to the full report."""
    print(text, flush=True)
    with open(os.path.join(HERE, "results", name), "w") as f:
        f.write(text + "\n")
    report.append(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--module", default=os.path.join(
        ROOT, "build", "ngx_http_pulse_module.so"))
    ap.add_argument("--publisher", default=os.path.join(
        ROOT, "build", "pulse-publisher"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--only", default="")
    ap.add_argument("--module-b", default="",
                    help="a second Pulse build, run in the same alternating "
                         "rounds (A/B): its column is 'Pulse B', the B/A "
                         "ratio is reported")
    ap.add_argument("--skip-nchan", action="store_true",
                    help="with --module-b: only the two Pulse builds (and the "
                         "floor)")
    a = ap.parse_args()
    rounds = a.rounds or (1 if a.quick else 3)
    if not os.path.exists(LOADGEN):
        sys.exit("bench: build/loadgen missing (make bench builds it)")
    date = datetime.datetime.now().strftime("%Y-%m-%d")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    report = ["# Pulse vs nchan, %s%s\n" % (date, " (quick)" if a.quick else ""),
              "Same nginx config (prefix aside), 2 workers, one machine; %d "
              "alternating rounds, medians. Ratio = Pulse / nchan on the "
              "headline metric.\n" % rounds]
    headline = []
    for name, fn, key, better, with_floor in SCENARIOS:
        if a.only and a.only not in name:
            continue
        flavors = (["pulse"] + (["pulse-b"] if a.module_b else [])
                   + ([] if a.skip_nchan and a.module_b else ["nchan"])
                   + (["floor"] if with_floor else []))
        results = {f: [] for f in flavors}
        for _ in range(rounds):
            for flavor in flavors:
                if flavor == "floor":
                    srv = Floor()
                elif flavor == "pulse-b":
                    srv = Server(a.nginx, a.module_b, "pulse")
                else:
                    srv = Server(a.nginx, a.module if flavor == "pulse"
                                 else NCHAN, flavor)
                try:
                    results[flavor].append(fn(srv, a.quick))
                finally:
                    srv.stop()
        med = {f: median_runs(r) for f, r in results.items()}

        base = "nchan" if "nchan" in med else "pulse"

        def ratio_to_nchan(f):
            return (med[f][key] / med[base][key]
                    if med[base][key] else float("nan"))
        ratio = ratio_to_nchan("pulse")
        floor_ratio = ratio_to_nchan("floor") if with_floor else None
        headline.append((name, key, med["pulse"][key], med[base][key],
                         ratio, better, floor_ratio))
        names = {"pulse": "Pulse", "pulse-b": "Pulse B", "nchan": "nchan",
                 "floor": "floor"}
        lines = ["## %s\n" % name,
                 "| metric | %s |" % " | ".join(names[f] for f in flavors),
                 "|---|%s" % ("---|" * len(flavors))]
        for k in med["pulse"]:
            lines.append("| %s | %s |" % (k, " | ".join(
                fmt(med[f][k]) for f in flavors)))
        lines.append("\nHeadline: %s, Pulse/nchan = %.2f (%s is better)"
                     % (key, ratio, better))
        if a.module_b:
            lines.append("A/B: Pulse B / Pulse = %.3f; Pulse / floor = %.3f, "
                         "Pulse B / floor = %s" % (
                             med["pulse-b"][key] / med["pulse"][key],
                             med["pulse"][key] / med["floor"][key]
                             if with_floor else float("nan"),
                             "%.3f" % (med["pulse-b"][key] / med["floor"][key])
                             if with_floor else "-"))
        if with_floor:
            lines.append("floor/nchan = %.2f: the bound for any server that "
                         "writes one frame per delivery" % floor_ratio)
        lines.append("")
        publish_section(report, "\n".join(lines),
                        "%s-%s.md" % (date, name))
    if not a.only or "setup" in a.only:
        import setup_bench
        text, med = setup_bench.report(a.nginx, a.module, a.quick, rounds)
        publish_section(report, text, "%s-connection-setup.md" % date)
        for t, label in (("sse", "EventSource"), ("ws", "WebSocket")):
            p, n = med[("pulse", t, "ES256 warm")], \
                med[("nchan", t, "authorize hook")]
            headline.append(("connection-setup (%s)" % label,
                             "setups per server CPU s, Pulse ES256 warm vs "
                             "nchan's authorize hook", p, n, p / n, "higher",
                             None))
    if not a.only or "wildcard" in a.only:
        import wildcard_bench
        text, rows = wildcard_bench.report(a.nginx, a.module, a.quick)
        publish_section(report, text, "%s-wildcard.md" % date)
        n, named, wild = rows[-1][:3]
        headline.append(("wildcard subscribe (%d channels)" % n,
                         "ms to subscribed, `x.*` vs by name (Pulse only)",
                         wild, named, wild / named if named else 0, "lower",
                         None))
    if not a.only or "storm" in a.only:
        text, (paced, nchan) = storm(a.nginx, a.module, a.quick, rounds)
        headline.append(("storm", "server CPU s, Pulse throttle=1s vs nchan "
                         "live", paced, nchan, paced / nchan if nchan else 0,
                         "lower", None))
        publish_section(report, text, "%s-storm.md" % date)
    if not a.only or "metrics" in a.only:
        text, ratios = metrics_cost(a.nginx, a.module, a.quick, rounds)
        for name, (on, off) in ratios.items():
            headline.append(("metrics-cost (%s)" % name,
                             "deliveries per server CPU s, pulse_metrics on "
                             "vs off", on, off, on / off if off else 0,
                             "higher", None))
        publish_section(report, text, "%s-metrics-cost.md" % date)
    if not a.only or "e2e" in a.only:
        res = e2e(a.nginx, a.module, a.publisher, a.quick)
        lines = ["## e2e-redis (Pulse only: nchan has no sidecar)\n",
                 "| path at 1,000 events/s | deliveries | lost | p50 ms | "
                 "p99 ms |", "|---|---|---|---|---|"]
        for path in ("direct POST", "XADD -> pulse-publisher"):
            r = res[path]
            lines.append("| %s | %d | %d | %s | %s |" % (
                path, r["deliveries"], r["lost"], fmt(r["p50 ms"]),
                fmt(r["p99 ms"])))
        t = res["throughput"]
        lines.append("\nAdded by Redis + pulse-publisher: p50 %+.2f ms, p99 "
                     "%+.2f ms. Throughput through one publisher: %s events/s "
                     "(%d XADDs in %.2f s, no subscribers).\n" % (
                         res["XADD -> pulse-publisher"]["p50 ms"]
                         - res["direct POST"]["p50 ms"],
                         res["XADD -> pulse-publisher"]["p99 ms"]
                         - res["direct POST"]["p99 ms"],
                         t["events per s"], t["events"], t["seconds"]))
        publish_section(report, "\n".join(lines), "%s-e2e-redis.md" % date)
    summary = ["## Summary\n", "| scenario | metric | Pulse | nchan | "
               "Pulse/nchan | floor/nchan | better |",
               "|---|---|---|---|---|---|---|"]
    for name, key, p, n, r, b, fr in headline:
        summary.append("| %s | %s | %s | %s | %.2f | %s | %s |"
                       % (name, key, fmt(p), fmt(n), r,
                          "-" if fr is None else "%.2f" % fr, b))
    report.insert(2, "\n".join(summary) + "\n")
    print("\n".join(summary))
    if a.only:
        return  # a partial run does not replace the latest full results
    with open(os.path.join(HERE, "results", "latest.md"), "w") as f:
        f.write("\n".join(report))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 3.5))
        names = [h[0] for h in headline]
        # normalise so that > 1 always means Pulse is better
        vals = [h[4] if h[5] == "higher" else (1 / h[4] if h[4] else 0)
                for h in headline]
        ax.barh(names, vals, color=["#2a7" if v >= 1 else "#c44" for v in vals])
        floor = [(h[0], h[6] if h[5] == "higher" else 1 / h[6])
                 for h in headline if h[6]]
        if floor:
            ax.scatter([f[1] for f in floor], [f[0] for f in floor],
                       marker="|", s=300, color="k", zorder=3,
                       label="floor: one send(2) per delivery, nothing else")
            ax.legend(loc="lower right", fontsize=8)
        ax.axvline(1, color="k", lw=0.8)
        ax.set_xlabel("how many times better Pulse is than nchan (1 = equal)")
        fig.tight_layout()
        fig.savefig(os.path.join(HERE, "results", "%s-summary.png" % date))
        fig.savefig(os.path.join(HERE, "results", "latest.png"))
    except ImportError:
        print("bench: python3-matplotlib missing, no chart")


if __name__ == "__main__":
    main()
