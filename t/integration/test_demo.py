"""`make demo` (demo/run.py) starts nginx with the module, serves the page,
logs in per tenant and streams each tenant's generated dashboard events;
SIGINT to its process group (Ctrl-C) stops everything, cleanly. The page
itself is tested in Chromium by test_dashboard.py."""

import json
import os
import signal
import subprocess

import requests

from clients import parse_sse, sse
from conftest import ROOT, free_port, wait_for


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % d) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return out


def test_demo_serves_page_and_live_events(request):
    port = free_port()
    p = subprocess.Popen(
        ["/usr/bin/python3", os.path.join(ROOT, "demo", "run.py"),
         "--port", str(port), "--nginx", request.config.getoption("--nginx"),
         "--module", request.config.getoption("--module"),
         "--publisher", request.config.getoption("--publisher"),
         "--redis-server", request.config.getoption("--redis-server")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
        env=dict(os.environ,
                 PULSE_NGINX_PRELOAD=request.config.getoption("--preload")))
    try:
        line = ""
        while "open http://" not in line:
            line = p.stdout.readline()
            assert line, "demo exited early"
        base = "http://127.0.0.1:%d" % port
        page = requests.get(base + "/")
        assert page.status_code == 200
        assert "pulse.v1" in requests.get(base + "/app.js").text
        # no token: refused; a tenant's token: that tenant's channels
        r = requests.get(base + "/sub/bandwidth",
                         headers={"Accept": "text/event-stream"}, timeout=5)
        assert r.status_code == 401
        # the demo's API says what is wrong, and stays up
        assert requests.get(base + "/api/whoami").status_code == 401
        bad = requests.post(base + "/api/login", json={"tenant": "nope"})
        assert (bad.status_code, bad.json()) == (400,
                                                 {"error": "unknown tenant"})
        bad = requests.post(base + "/api/login", data="{not json")
        assert bad.status_code == 400
        forged = requests.get(base + "/api/whoami",
                              headers={"Cookie": "pulse_token=x.y.z"})
        assert forged.status_code == 401
        for tenant, iface in (("acme", "ge-0/0/0"), ("globex", "et-0/0/0")):
            login = requests.post(base + "/api/login",
                                  json={"tenant": tenant})
            assert login.status_code == 200
            cookie = "pulse_token=" + login.cookies["pulse_token"]
            s = sse(base + "/sub/bandwidth", {"Cookie": cookie})
            body = s.read_until(lambda b: b.count(b"event: sample") >= 8, 15)
            s.close()
            samples = [json.loads(e["data"]) for e in parse_sse(body)
                       if e.get("event") == "sample"]
            assert {"iface", "in_bps", "out_bps", "ts"} <= set(samples[0])
            assert iface in {x["iface"] for x in samples}
            s = sse(base + "/sub/sessions", {"Cookie": cookie})
            body = s.read_until(lambda b: b"event: update" in b, 15)
            s.close()
            assert ("@%s.example" % tenant).encode() in body
        # redis-server, nginx and the publisher are out of the terminal's
        # process group: Ctrl-C reaches only the script, which stops them
        kids = children(p.pid)
        assert len(kids) == 3, kids
        assert all(os.getsid(k) == k for k in kids), kids
    finally:
        # Ctrl-C at a terminal: SIGINT to the whole foreground process group
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert "demo: stopped" in out
    assert "Traceback" not in err, err
    # nothing left listening
    wait_for(lambda: subprocess.run(
        ["ss", "-Htln", "sport", "=", ":%d" % port],
        capture_output=True, text=True).stdout.strip() == "", 10,
        "the demo's nginx to exit")
