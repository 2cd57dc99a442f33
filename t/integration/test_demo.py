"""`make demo` (demo/run.py) starts nginx with the module, serves the page
and streams generated dashboard events; SIGINT stops everything."""

import json
import os
import signal
import subprocess

import requests

from clients import parse_sse, sse
from conftest import ROOT, free_port, wait_for


def test_demo_serves_page_and_live_events(request):
    port = free_port()
    p = subprocess.Popen(
        ["/usr/bin/python3", os.path.join(ROOT, "demo", "run.py"),
         "--port", str(port), "--nginx", request.config.getoption("--nginx"),
         "--module", request.config.getoption("--module"),
         "--publisher", request.config.getoption("--publisher"),
         "--redis-server", request.config.getoption("--redis-server")],
        stdout=subprocess.PIPE, text=True,
        env=dict(os.environ,
                 PULSE_NGINX_PRELOAD=request.config.getoption("--preload")))
    try:
        line = ""
        while "open http://" not in line:
            line = p.stdout.readline()
            assert line, "demo exited early"
        page = requests.get("http://127.0.0.1:%d/" % port)
        assert page.status_code == 200
        assert "EventSource" in requests.get(
            "http://127.0.0.1:%d/app.js" % port).text
        s = sse("http://127.0.0.1:%d/sub/bandwidth" % port)
        body = s.read_until(lambda b: b.count(b"event: sample") >= 8, 15)
        s.close()
        samples = [json.loads(e["data"]) for e in parse_sse(body)
                   if e.get("event") == "sample"]
        assert {"iface", "in_bps", "out_bps", "ts"} <= set(samples[0])
        s = sse("http://127.0.0.1:%d/sub/sessions" % port)
        body = s.read_until(lambda b: b"event: update" in b, 15)
        s.close()
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=20)
    assert p.returncode == 0
    assert "demo: stopped" in out
    # nothing left listening
    wait_for(lambda: subprocess.run(
        ["ss", "-Htln", "sport", "=", ":%d" % port],
        capture_output=True, text=True).stdout.strip() == "", 10,
        "the demo's nginx to exit")
