"""What a pulse.v1 wildcard subscription costs (docs/websocket.md), Pulse
only (nchan has none): the time from a `subscribe` frame to its
`subscribed` reply for one channel by name and for a wildcard, with the
zone holding few channels and many (a wildcard's start is one pass over
the zone's channel table under its lock), and the time from a publish that
creates a matching channel to its message on the wildcard's socket beside
a publish to a channel subscribed by name.

    /usr/bin/python3 bench/wildcard_bench.py [--quick]
"""

import argparse
import http.client
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "t", "integration"))

import run  # noqa: E402  (the benchmark servers)
from wsclient import WsClient  # noqa: E402

V1 = "        location = /v1 { pulse_pubsub; }\n"


def fill(port, n):
    """n channels `fill.<i>`, one message each, over one connection."""
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(n):
        c.request("POST", "/pub/fill.%d" % i, body=b"x")
        r = c.getresponse()
        r.read()
        assert r.status in (201, 202), r.status
    c.close()


def subscribe_ms(ws, channel, i):
    t0 = time.perf_counter()
    ws.send_json({"type": "subscribe", "channel": channel, "id": i})
    r = ws.recv_json()
    ms = (time.perf_counter() - t0) * 1000
    assert r["type"] == "subscribed", r
    ws.send_json({"type": "unsubscribe", "channel": channel})
    assert ws.recv_json()["type"] == "unsubscribed"
    return ms


def new_channel_ms(port, ws, channel):
    c = http.client.HTTPConnection("127.0.0.1", port)
    t0 = time.perf_counter()
    c.request("POST", "/pub/" + channel, body=b"n")
    c.getresponse().read()
    m = ws.recv_json()
    ms = (time.perf_counter() - t0) * 1000
    assert (m["type"], m["channel"]) == ("message", channel), m
    c.close()
    return ms


def measure(nginx, module, quick):
    sizes = (0, 2000) if quick else (0, 10000, 100000)
    reps = 10 if quick else 30
    rows = []
    for n in sizes:
        srv = run.Server(nginx, module, "pulse", extra=V1)
        try:
            fill(srv.port, n)
            ws = WsClient(srv.port, "/v1", protocols="pulse.v1")
            named = [subscribe_ms(ws, "one.x", i) for i in range(reps)]
            wild = [subscribe_ms(ws, "other.*", i) for i in range(reps)]
            ws.send_json({"type": "subscribe", "channel": "live.*"})
            assert ws.recv_json()["type"] == "subscribed"
            ws.send_json({"type": "subscribe", "channel": "named"})
            assert ws.recv_json()["type"] == "subscribed"
            created = [new_channel_ms(srv.port, ws, "live.%d" % i)
                       for i in range(reps)]
            by_name = [new_channel_ms(srv.port, ws, "named")
                       for _ in range(reps)]
            ws.close()
            rows.append((n, statistics.median(named),
                         statistics.median(wild),
                         statistics.median(created),
                         statistics.median(by_name)))
        finally:
            srv.stop()
    return rows


def report(nginx, module, quick):
    rows = measure(nginx, module, quick)
    lines = ["## wildcard (Pulse only: nchan has no wildcard "
             "subscriptions)\n",
             "Medians, ms. A wildcard's subscribe makes one pass over the "
             "zone's channels; a channel it matches later costs its first "
             "publish a notice per watching worker.\n",
             "| channels in the zone | subscribe by name | subscribe "
             "`other.*` | publish -> wildcard, new channel | publish -> "
             "channel by name |", "|---|---|---|---|---|"]
    for n, named, wild, created, by_name in rows:
        lines.append("| %d | %.3f | %.3f | %.3f | %.3f |"
                     % (n, named, wild, created, by_name))
    lines.append("")
    return "\n".join(lines), rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--module", default=os.path.join(
        run.ROOT, "build", "ngx_http_pulse_module.so"))
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    print(report(a.nginx, a.module, a.quick)[0])


if __name__ == "__main__":
    main()
