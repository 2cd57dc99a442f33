"""pulse-publisher's Pub/Sub path with a real redis-server and nginx:
routing by channel and pattern, drops that do not stop it, Redis and nginx
restarts survived, SIGTERM, and config errors (exit 78)."""

import os
import re
import signal
import subprocess
import time

import pytest
import redis
import requests

from clients import parse_sse, sse
from conftest import publisher_lines, wait_for

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.+)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
}
"""


class Publisher:
    def __init__(self, binary, path):
        self.proc = subprocess.Popen([binary, "-c", path],
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=10)
        self.lines = publisher_lines(err)
        return self.proc.returncode


def subscribed(r):
    """Both the channel and the pattern subscriptions are in place."""
    return (r.pubsub_numsub("faults")[0][1] >= 1
            and r.execute_command("PUBSUB", "NUMPAT") >= 1)


def write_config(tmp_path, nginx, redis_port, extra=""):
    path = str(tmp_path / "publisher.yaml")
    with open(path, "w") as f:
        f.write("""
nginx:
  host: 127.0.0.1
  port: %d
  publish_path: /pub/{channel}
redis:
  host: 127.0.0.1
  port: %d
sources:
  - name: direct
    type: pubsub
    channels: [faults]
  - name: widgets
    type: pubsub
    patterns: ["tenant:*:widget:*"]
    target: "{1}.{2}"
    event: "widget"
  - name: broken
    type: pubsub
    channels: [broken]
    target: "{1}"
%s""" % (nginx.port, redis_port, extra))
    return path


@pytest.fixture
def setup(request, nginx, redis_server, tmp_path):
    path = write_config(tmp_path, nginx, redis_server["port"])
    pub = Publisher(request.config.getoption("--publisher"), path)
    r = redis.Redis(port=redis_server["port"])
    wait_for(lambda: subscribed(r), 10, "publisher to subscribe")
    yield nginx, r, pub
    if pub.proc.poll() is None:
        pub.stop()


def test_routes_channels_and_patterns(setup):
    nginx, r, pub = setup
    a = sse(nginx.url("/sub/faults"))
    b = sse(nginx.url("/sub/acme.bw"))
    r.publish("faults", "link down")
    r.publish("tenant:acme:widget:bw", '{"bps": 1}')
    a.read_until(lambda x: b"data: link down\n\n" in x)
    body2 = b.read_until(lambda x: b"data: {\"bps\": 1}\n\n" in x)
    assert [e for e in parse_sse(body2) if "data" in e][0]["event"] == "widget"
    a.close()
    b.close()
    assert pub.stop() == 0
    assert "publisher: stopping: 2 published, 0 dropped" in pub.lines


def test_bad_events_are_dropped_and_it_carries_on(setup):
    nginx, r, pub = setup
    s = sse(nginx.url("/sub/faults"))
    # a channel id nginx refuses (too long for its 1024-byte limit)
    r.publish("tenant:%s:widget:x" % ("y" * 2000), "too long")
    # a source whose target cannot be built ({1} with no pattern capture)
    r.publish("broken", "unroutable")
    r.publish("faults", "after")
    s.read_until(lambda x: b"data: after\n\n" in x)
    s.close()
    assert pub.stop() == 0
    assert any("dropping: nginx answered 403" in l for l in pub.lines), \
        pub.lines
    assert any("no target channel for 'broken' in source broken" in l
               for l in pub.lines), pub.lines
    assert "publisher: stopping: 1 published, 2 dropped" in pub.lines


def test_survives_redis_and_nginx_restarts(request, nginx, redis_server,
                                           tmp_path):
    path = write_config(tmp_path, nginx, redis_server["port"])
    pub = Publisher(request.config.getoption("--publisher"), path)
    r = redis.Redis(port=redis_server["port"])
    try:
        wait_for(lambda: subscribed(r), 10, "subscribe")
        # The connection to Redis drops.
        r.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        wait_for(lambda: subscribed(r), 10,
                 "resubscribe after the connection was killed")
        s = sse(nginx.url("/sub/faults"))
        r.publish("faults", "after redis")
        s.read_until(lambda x: b"data: after redis\n\n" in x)
        s.close()
        # nginx restarts: the keep-alive connection is gone, it reconnects.
        nginx.stop()
        nginx.start()
        s = sse(nginx.url("/sub/faults"))
        r.publish("faults", "after nginx")
        s.read_until(lambda x: b"data: after nginx\n\n" in x)
        s.close()
    finally:
        assert pub.stop() == 0
    assert any("reconnecting" in l for l in pub.lines), pub.lines


def test_config_errors_exit_78(request, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nginx: {port: 0}\nsources: []\n")
    binary = request.config.getoption("--publisher")
    r = subprocess.run([binary, "-c", str(bad)], capture_output=True,
                       text=True)
    assert r.returncode == 78
    assert "bad.yaml:1: nginx.port: must be between 1 and 65535" in r.stderr
    r = subprocess.run([binary, "--check", "-c", os.path.join(
        os.path.dirname(__file__), "..", "..", "conf.d",
        "publisher.yaml.example")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([binary, "--bogus"], capture_output=True, text=True)
    assert r.returncode == 64


def test_sighup_reloads_the_config(request, nginx, redis_server, tmp_path):
    path = write_config(tmp_path, nginx, redis_server["port"])
    pub = Publisher(request.config.getoption("--publisher"), path)
    r = redis.Redis(port=redis_server["port"])
    try:
        wait_for(lambda: subscribed(r), 10, "subscribe")
        # a new source appears with the reload
        write_config(tmp_path, nginx, redis_server["port"], extra="""
  - name: alarms
    type: pubsub
    channels: [alarms]
""")
        pub.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: r.pubsub_numsub("alarms")[0][1] >= 1, 10,
                 "the reloaded config's channel")
        s = sse(nginx.url("/sub/alarms"))
        r.publish("alarms", "new source")
        s.read_until(lambda x: b"data: new source\n\n" in x)
        s.close()
        # a broken config is refused and the running one keeps working
        with open(path, "w") as f:
            f.write("nginx: {port: 0}\n")
        pub.proc.send_signal(signal.SIGHUP)
        s = sse(nginx.url("/sub/alarms"))
        deadline = time.monotonic() + 5
        while b"still here" not in s.body and time.monotonic() < deadline:
            r.publish("alarms", "still here")
            try:
                s.read_until(lambda x: b"data: still here\n\n" in x, 0.3)
            except TimeoutError:
                pass
        s.close()
        assert b"data: still here\n\n" in s.body
    finally:
        assert pub.stop() == 0
    assert any("config reloaded" in l for l in pub.lines), pub.lines
    assert any("config reload failed, keeping the running config" in l
               and "nginx.port" in l for l in pub.lines), pub.lines


def test_metrics_and_healthz(request, nginx, redis_server, tmp_path):
    from conftest import free_port
    mport = free_port()
    path = write_config(tmp_path, nginx, redis_server["port"])
    with open(path, "a") as f:
        f.write("metrics: 127.0.0.1:%d\n" % mport)
    pub = Publisher(request.config.getoption("--publisher"), path)
    r = redis.Redis(port=redis_server["port"])
    base = "http://127.0.0.1:%d" % mport
    try:
        wait_for(lambda: subscribed(r), 10, "subscribe")
        assert requests.get(base + "/healthz").text == "ok\n"
        s = sse(nginx.url("/sub/faults"))
        r.publish("faults", "m1")
        r.publish("faults", "m2")
        s.read_until(lambda x: b"data: m2\n\n" in x)
        s.close()
        m = requests.get(base + "/metrics")
        assert m.status_code == 200
        text = m.text
        assert 'pulse_publisher_events_in_total{source="direct"} 2' in text
        assert ('pulse_publisher_events_published_total{source="direct"} 2'
                in text)
        assert 'pulse_publisher_up{connection="redis_pubsub"} 1' in text
        assert "pulse_publisher_publish_latency_seconds_count 2" in text
        assert requests.get(base + "/nope").status_code == 404
        # Redis away: healthz says so
        r.execute_command("CONFIG", "SET", "requirepass", "pw")
        r2 = redis.Redis(port=redis_server["port"], password="pw")
        r2.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        def unhealthy():
            h = requests.get(base + "/healthz")
            # (a Response is falsy for 5xx: return its text)
            return h.text if h.status_code == 503 else None
        assert "redis pubsub down" in wait_for(unhealthy, 10, "unhealthy")
        # a reconnect refused for want of a password counts as "auth"
        wait_for(lambda: 'redis_errors_total{kind="auth"}' in
                 requests.get(base + "/metrics").text, 10, "an auth error")
        r2.execute_command("CONFIG", "SET", "requirepass", "")
        wait_for(lambda: requests.get(base + "/healthz").status_code == 200,
                 15, "healthy again")
        text = requests.get(base + "/metrics").text
        assert "pulse_publisher_redis_reconnects_total 1" in text
        # the kill was an EOF, the reconnects failed on NOAUTH
        assert 'pulse_publisher_redis_errors_total{kind="eof"} 1' in text
        assert re.search(r'pulse_publisher_redis_errors_total\{kind="auth"\} '
                         r'[1-9]', text), text
    finally:
        assert pub.stop() == 0


def test_pubsub_queue_keeps_the_newest_when_full(request, nginx,
                                                  redis_server, tmp_path):
    """The publisher is stopped (SIGSTOP) while 50 events arrive; on
    SIGCONT it reads them all at once into a queue of 3: the 3 newest are
    published, the 47 oldest dropped and counted."""
    path = write_config(tmp_path, nginx, redis_server["port"])
    with open(path, "a") as f:
        f.write("queue_size: 3\n")
    pub = Publisher(request.config.getoption("--publisher"), path)
    r = redis.Redis(port=redis_server["port"])
    try:
        wait_for(lambda: subscribed(r), 10, "subscribe")
        s = sse(nginx.url("/sub/faults"))
        pub.proc.send_signal(signal.SIGSTOP)

        def stopped():
            with open("/proc/%d/stat" % pub.proc.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "T"
        wait_for(stopped, 5, "the publisher to stop")
        for i in range(50):
            r.publish("faults", "q%02d" % i)
        time.sleep(0.3)  # Redis writes to the stopped client's socket
        pub.proc.send_signal(signal.SIGCONT)
        body = s.read_until(lambda x: b"data: q49\n\n" in x)
        s.close()
        from clients import parse_sse
        got = [e["data"] for e in parse_sse(body)
               if e.get("data", "").startswith("q")]
        # the newest three arrive; the queue never held more than three
        # per read of the socket
        assert got[-3:] == ["q47", "q48", "q49"]
        assert len(got) <= 9, got
    finally:
        assert pub.stop() == 0
    final = [l for l in pub.lines if l.startswith("publisher: stopping:")][0]
    published, dropped = [int(x) for x in re.findall(r"(\d+) ", final)]
    assert published + dropped == 50 and dropped >= 41, final
    assert any("pubsub queue: full (3): dropping the oldest events" in l
               for l in pub.lines), pub.lines
