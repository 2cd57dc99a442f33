#!/usr/bin/python3
"""The demo dashboard under load, in headless Chromium: how busy the main
thread is with every widget live at about 50 updates/s, and the latency
from the backend's write (PUBLISH for bandwidth samples, XADD for faults)
to the DOM update, from the browser's clock against the generator's
timestamps (one machine, one clock).

    bench/dashboard.py [--seconds 20] [--tick 0.2]

Main-thread busy is Chromium's own accounting (CDP Performance.getMetrics:
TaskDuration over the wall time). Reports; asserts nothing."""

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "t", "integration"))

from browser import Browser  # noqa: E402


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] \
        if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--module", default=os.path.join(
        ROOT, "build", "ngx_http_pulse_module.so"))
    ap.add_argument("--publisher", default=os.path.join(
        ROOT, "build", "pulse-publisher"))
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--tick", type=float, default=0.2,
                    help="generator round; 0.2 s is about 50 updates/s to "
                    "one tenant's page")
    ap.add_argument("--faults", type=float, default=5,
                    help="extra faults XADDed per second (the XADD path)")
    a = ap.parse_args()
    import redis

    port = free_port()
    demo = subprocess.Popen(
        ["/usr/bin/python3", os.path.join(ROOT, "demo", "run.py"),
         "--port", str(port), "--nginx", a.nginx, "--module", a.module,
         "--publisher", a.publisher, "--tick", str(a.tick)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True)
    banner = ""
    while "Ctrl-C" not in banner:
        line = demo.stdout.readline()
        if not line:
            sys.exit("dashboard bench: the demo did not start")
        banner += line
    r = redis.Redis(port=int(re.search(r"redis: 127.0.0.1:(\d+)",
                                       banner).group(1)))
    b = Browser()
    try:
        b.open("http://127.0.0.1:%d/?probe=1" % port)
        b.wait("document.querySelector('[data-tenant=acme]')")
        b.eval("document.querySelector('[data-tenant=acme]').click()")
        b.wait("document.querySelector('.pulse-pill') && document."
               "querySelector('.pulse-pill').dataset.status == 'live'", 15)
        time.sleep(5)  # warm up: charts full, JIT done

        stop = []

        def faults():
            n = 0
            while not stop:
                n += 1
                r.xadd("demo:events", {
                    "tenant": "acme", "widget": "faults", "event": "minor",
                    "data": json.dumps({"ts": time.time(),
                                        "severity": "minor", "code": "B",
                                        "device": "bench", "text": "#%d" % n})})
                time.sleep(1 / a.faults)
        count = ("[...document.querySelectorAll('[data-widget]')]"
                 ".reduce((s, e) => s + +e.dataset.count, 0)")
        b.eval("window.__latency.length = 0")
        m0, c0 = b.metrics(), b.eval(count)
        t = threading.Thread(target=faults, daemon=True)
        t.start()
        time.sleep(a.seconds)
        m1, c1 = b.metrics(), b.eval(count)
        stop.append(1)
        t.join()
        lat = b.eval("window.__latency")
        wall = m1["Timestamp"] - m0["Timestamp"]
        busy = (m1["TaskDuration"] - m0["TaskDuration"]) / wall
        script = (m1["ScriptDuration"] - m0["ScriptDuration"]) / wall
        layout = (m1["LayoutDuration"] + m1["RecalcStyleDuration"]
                  - m0["LayoutDuration"] - m0["RecalcStyleDuration"]) / wall
        rate = (c1 - c0) / wall
        rows = []
        for w, path in (("bandwidth", "PUBLISH"), ("faults", "XADD")):
            xs = [x[1] for x in lat if x[0] == w]
            rows.append("| %s (%s → DOM) | %d | %.1f | %.1f | %.1f |" % (
                w, path, len(xs), pct(xs, 50), pct(xs, 99),
                max(xs) if xs else float("nan")))
        report = """## Dashboard in Chromium (%s)

`bench/dashboard.py --seconds %g --tick %g --faults %g`: the demo's
dashboard, every widget live, %s.

| measure | value |
|---|---|
| updates delivered to the page | %.1f /s |
| main thread busy (CDP TaskDuration / wall) | %.1f %% |
| of which script | %.1f %% |
| of which style and layout | %.1f %% |
| JS heap used at the end | %.1f MB |

| latency | samples | p50 ms | p99 ms | max ms |
|---|---|---|---|---|
%s
""" % (datetime.date.today().isoformat(), a.seconds, a.tick, a.faults,
            b.version, rate, 100 * busy, 100 * script, 100 * layout,
            m1["JSHeapUsedSize"] / 1e6, "\n".join(rows))
        print(report)
        out = os.path.join(HERE, "results", "%s-dashboard.md"
                           % datetime.date.today().isoformat())
        with open(out, "w") as f:
            f.write(report)
        print("written to", os.path.relpath(out, ROOT))
    finally:
        b.close()
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(30)


if __name__ == "__main__":
    main()
