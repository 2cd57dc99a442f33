"""pulse-publisher's Stream sources against a real redis-server and nginx:
ids from stream entry ids, read positions kept in Redis across restarts,
nginx down without loss, poison entries, consumer groups with XACK, and the
two-node resume: a client reads on node A and resumes on node B with
exactly the messages it missed."""

import shutil
import signal
import subprocess
import tempfile
import time

import pytest
import redis
import requests

from clients import parse_sse, sse
from conftest import publisher_lines, wait_for

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.+)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_publisher_message_id on;
        pulse_message_buffer_length 100;
    }
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
}
"""

YAML = """
nginx:
  port: %(port)d
  publish_path: /pub/{channel}
redis:
  port: %(redis)d
sources:
  - name: %(name)s
    type: stream
    keys: [%(key)s]
    target: "{tenant}.{widget}"
    event_field: kind
    content_type_field: ctype
    %(extra)s
"""


class Publisher:
    def __init__(self, binary, tmp_path, nginx, redis_port, key, name="s",
                 extra="", top=""):
        self.path = str(tmp_path / ("%s-%d.yaml" % (name, nginx.port)))
        with open(self.path, "w") as f:
            f.write(top + "\n" + YAML % {"port": nginx.port,
                                         "redis": redis_port, "name": name,
                                         "key": key, "extra": extra})
        self.binary = binary
        self.start()

    def start(self):
        self.proc = subprocess.Popen([self.binary, "-c", self.path],
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=15)
        self.lines = publisher_lines(err)
        assert self.proc.returncode == 0, self.lines
        return self.lines


def stored(nginx, channel):
    """Messages the channel holds; 0 while it does not exist yet (404, until
    the sidecar's first publish made it)."""
    r = requests.get(nginx.url("/pub/" + channel),
                     headers={"Accept": "text/json"})
    return r.json()["messages"] if r.status_code == 200 else 0


def xadd(r, key, data, tenant="acme", widget="bw", kind="sample", **more):
    fields = {"tenant": tenant, "widget": widget, "kind": kind,
              "data": data}
    fields.update(more)
    return r.xadd(key, fields).decode()


def msg_id(entry_id):
    ms, seq = entry_id.split("-")
    return "%d:%d" % (int(ms) // 1000, int(ms) % 1000 * 1000000 + int(seq))


def datas(body):
    return [e for e in parse_sse(body) if "data" in e]


@pytest.fixture
def r(redis_server):
    c = redis.Redis(port=redis_server["port"])
    c.flushall()
    return c


def started(r, pub, key):
    # the publisher pinned its position once its read is blocking
    wait_for(lambda: any(c.get("cmd") in ("xread", "xreadgroup")
                         for c in r.client_list()), 10, "publisher reading")


def test_entries_become_messages_with_entry_ids(request, nginx, r, tmp_path,
                                                redis_server):
    pub = Publisher(request.config.getoption("--publisher"), tmp_path, nginx,
                    redis_server["port"], "ev")
    try:
        started(r, pub, "ev")
        s = sse(nginx.url("/sub/acme.bw"))
        ids = [xadd(r, "ev", "m%d" % i) for i in range(3)]
        xadd(r, "ev", "typed", ctype="application/json", kind="update")
        body = s.read_until(lambda b: b"data: typed\n\n" in b)
        s.close()
        evs = datas(body)
        assert [e["data"] for e in evs] == ["m0", "m1", "m2", "typed"]
        assert [e["id"] for e in evs[:3]] == [msg_id(i) for i in ids]
        assert evs[0]["event"] == "sample" and evs[3]["event"] == "update"
        lp = requests.get(nginx.url("/sub/acme.bw?last_event_id=" +
                                    evs[2]["id"]))
        assert lp.text == "typed"
        assert lp.headers["Content-Type"] == "application/json"
    finally:
        pub.stop()


def test_restart_loses_nothing(request, nginx, r, tmp_path, redis_server):
    pub = Publisher(request.config.getoption("--publisher"), tmp_path, nginx,
                    redis_server["port"], "rs")
    started(r, pub, "rs")
    xadd(r, "rs", "before", widget="rs")
    wait_for(lambda: requests.get(nginx.url("/pub/acme.rs")).status_code
             == 200, 10, "first entry")
    pub.stop()
    for i in range(3):
        xadd(r, "rs", "while-down-%d" % i, widget="rs")
    pub.start()
    s = sse(nginx.url("/sub/acme.rs"))
    body = s.read_until(lambda b: b"data: while-down-2\n\n" in b)
    s.close()
    assert [e["data"] for e in datas(body)] == \
        ["before", "while-down-0", "while-down-1", "while-down-2"]
    pub.stop()


def test_nginx_down_holds_reads_and_loses_nothing(request, nginx, r,
                                                   tmp_path, redis_server):
    pub = Publisher(request.config.getoption("--publisher"), tmp_path, nginx,
                    redis_server["port"], "nd")
    try:
        started(r, pub, "nd")
        nginx.stop()
        for i in range(5):
            xadd(r, "nd", "n%d" % i, widget="nd")
        time.sleep(0.5)
        nginx.start()
        s = sse(nginx.url("/sub/acme.nd?last_event_id=0"))
        body = s.read_until(lambda b: b"data: n4\n\n" in b, 15)
        s.close()
        assert [e["data"] for e in datas(body)] == ["n%d" % i for i in range(5)]
    finally:
        lines = pub.stop()
    assert any("holding stream reads and retrying" in l for l in lines), lines


def test_healthz_names_nginx_within_a_second_while_entries_wait(
        request, nginx, r, tmp_path, redis_server):
    """nginx down: the held stream entries are retried without blocking
    the loop, so /healthz and /metrics keep answering, and say so."""
    from conftest import free_port
    mport = free_port()
    pub = Publisher(request.config.getoption("--publisher"), tmp_path, nginx,
                    redis_server["port"], "hz",
                    top="metrics: 127.0.0.1:%d" % mport)
    base = "http://127.0.0.1:%d" % mport
    try:
        started(r, pub, "hz")
        wait_for(lambda: requests.get(base + "/healthz").status_code == 200,
                 10, "healthy")
        xadd(r, "hz", "before", widget="hz")
        wait_for(lambda: requests.get(nginx.url("/pub/acme.hz")).status_code
                 == 200, 10, "first entry")
        t0 = time.monotonic()
        nginx.stop()

        def down():
            h = requests.get(base + "/healthz", timeout=1)
            return h.text if h.status_code == 503 else None
        text = wait_for(down, 1.5, "healthz to name nginx")
        took = time.monotonic() - t0
        assert "nginx down" in text, text
        # entries while nginx is away are held; the loop still answers
        for i in range(3):
            xadd(r, "hz", "n%d" % i, widget="hz")
        time.sleep(0.5)
        for _ in range(5):
            h = requests.get(base + "/healthz", timeout=1)
            assert h.status_code == 503 and "nginx down" in h.text
            m = requests.get(base + "/metrics", timeout=1).text
            assert 'pulse_publisher_up{connection="nginx"} 0' in m
        nginx.start()
        wait_for(lambda: requests.get(base + "/healthz").status_code == 200,
                 10, "healthy again")
        s = sse(nginx.url("/sub/acme.hz?last_event_id=0"))
        body = s.read_until(lambda b: b"data: n2\n\n" in b, 15)
        s.close()
        # ("before" went with the old nginx's memory)
        assert [e["data"] for e in datas(body)] == ["n0", "n1", "n2"]
        print("healthz named nginx %.3f s after it stopped" % took)
    finally:
        pub.stop()


def test_poison_entries_are_dropped_and_reading_goes_on(request, nginx, r,
                                                         tmp_path,
                                                         redis_server):
    pub = Publisher(request.config.getoption("--publisher"), tmp_path, nginx,
                    redis_server["port"], "px")
    try:
        started(r, pub, "px")
        s = sse(nginx.url("/sub/acme.px"))
        r.xadd("px", {"tenant": "acme", "widget": "px"})  # no data field
        xadd(r, "px", "x", widget="y" * 2000)  # channel id too long: 403
        xadd(r, "px", "good", widget="px")
        s.read_until(lambda b: b"data: good\n\n" in b)
        s.close()
    finally:
        lines = pub.stop()
    assert "publisher: stopping: 1 published, 2 dropped" in lines, lines
    assert any("no field 'data'" in l for l in lines), lines


def test_consumer_group_acknowledges_after_publish(request, nginx, r,
                                                    tmp_path, redis_server):
    pub = Publisher(request.config.getoption("--publisher"), tmp_path, nginx,
                    redis_server["port"], "cg", name="grp",
                    extra="group: pulse-a\n    consumer: node-a")
    try:
        started(r, pub, "cg")
        s = sse(nginx.url("/sub/acme.cg"))
        for i in range(4):
            xadd(r, "cg", "g%d" % i, widget="cg")
        s.read_until(lambda b: b"data: g3\n\n" in b)
        s.close()
        wait_for(lambda: r.xpending("cg", "pulse-a")["pending"] == 0, 5,
                 "all entries acknowledged")
    finally:
        pub.stop()


def test_two_nodes_resume_across_nodes(request, nginx_factory, r, tmp_path,
                                       redis_server):
    binary = request.config.getoption("--publisher")
    a = nginx_factory(NGINX_CONFIG)
    b = nginx_factory(NGINX_CONFIG)
    pa = Publisher(binary, tmp_path, a, redis_server["port"], "tn",
                   name="na", extra="consumer: node-a\n    replay: 50")
    pb = Publisher(binary, tmp_path, b, redis_server["port"], "tn",
                   name="nb", extra="consumer: node-b\n    replay: 50")
    try:
        started(r, pa, "tn")
        wait_for(lambda: sum(c.get("cmd") == "xread"
                             for c in r.client_list()) >= 2, 10, "both")
        s = sse(a.url("/sub/acme.tn"))
        for i in range(3):
            xadd(r, "tn", "t%d" % i, widget="tn")
        body = s.read_until(lambda x: b"data: t2\n\n" in x)
        s.close()
        last = datas(body)[-1]["id"]
        for i in range(3, 6):  # missed while disconnected
            xadd(r, "tn", "t%d" % i, widget="tn")
        wait_for(lambda: stored(b, "acme.tn") == 6, 10, "node B has all six")
        s = sse(b.url("/sub/acme.tn"), {"Last-Event-ID": last})
        body = s.read_until(lambda x: b"data: t5\n\n" in x)
        s.close()
        assert [e["data"] for e in datas(body)] == ["t3", "t4", "t5"]
        # a third node started now gets the history by replay
        c = nginx_factory(NGINX_CONFIG)
        pc = Publisher(binary, tmp_path, c, redis_server["port"], "tn",
                       name="nc", extra="consumer: node-c\n    replay: 50")
        wait_for(lambda: requests.get(c.url("/pub/acme.tn")).status_code
                 == 200, 10, "replay on node C")
        s = sse(c.url("/sub/acme.tn"), {"Last-Event-ID": last})
        body = s.read_until(lambda x: b"data: t5\n\n" in x)
        s.close()
        assert [e["data"] for e in datas(body)] == ["t3", "t4", "t5"]
        pc.stop()
    finally:
        pa.stop()
        pb.stop()


def test_oversize_payload_is_dropped_and_reading_goes_on(request, nginx, r,
                                                          tmp_path,
                                                          redis_server):
    pub = Publisher(request.config.getoption("--publisher"), tmp_path, nginx,
                    redis_server["port"], "big")
    try:
        started(r, pub, "big")
        s = sse(nginx.url("/sub/acme.big"))
        xadd(r, "big", "x" * (2 * 1024 * 1024), widget="big")  # > 1m: 413
        xadd(r, "big", "small", widget="big")
        body = s.read_until(lambda b: b"data: small\n\n" in b)
        s.close()
        assert [e["data"] for e in datas(body)] == ["small"]
    finally:
        lines = pub.stop()
    assert "publisher: stopping: 1 published, 1 dropped" in lines, lines
    assert any("nginx answered 413" in l for l in lines), lines


def test_redis_server_restart_resumes_from_stored_position(
        request, nginx, tmp_path):
    """A real redis-server restart (with its AOF): the publisher reconnects
    and goes on from the position it stored, nothing lost or repeated."""
    from conftest import free_port
    port = free_port()
    d = str(tmp_path / "aof")
    import os
    os.makedirs(d)
    cmd = [request.config.getoption("--redis-server"), "--port", str(port),
           "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
           "--appendfsync", "always", "--dir", d]

    def start_redis():
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        c = redis.Redis(port=port)
        wait_for(lambda: _ping(c), 10, "redis-server")
        return p, c
    rp, c = start_redis()
    pub = Publisher(request.config.getoption("--publisher"), tmp_path, nginx,
                    port, "rr", name="rr")
    try:
        started(c, pub, "rr")
        for i in range(3):
            xadd(c, "rr", "a%d" % i, widget="rr")
        wait_for(lambda: stored(nginx, "acme.rr") == 3, 10, "first three")
        rp.terminate()
        rp.wait(10)
        rp, c = start_redis()
        for i in range(3, 6):
            xadd(c, "rr", "a%d" % i, widget="rr")
        s = sse(nginx.url("/sub/acme.rr?last_event_id=0"))
        body = s.read_until(lambda b: b"data: a5\n\n" in b, 15)
        s.close()
        assert [e["data"] for e in datas(body)] == ["a%d" % i
                                                    for i in range(6)]
    finally:
        lines = pub.stop()
        rp.terminate()
        rp.wait(10)
    assert "publisher: stopping: 6 published, 0 dropped" in lines, lines
    assert any("reconnecting" in l for l in lines), lines


def _ping(c):
    try:
        return c.ping()
    except redis.exceptions.ConnectionError:
        return False


def test_unix_sockets_auth_and_db(request, nginx_factory, tmp_path):
    """nginx and Redis over unix sockets, Redis with a password (AUTH) and
    the stream in db 3."""
    import os
    sock_dir = tempfile.mkdtemp(prefix="pulse-sock-")
    os.chmod(sock_dir, 0o755)
    nsock = os.path.join(sock_dir, "nginx.sock")
    rsock = os.path.join(sock_dir, "redis.sock")
    n = nginx_factory(NGINX_CONFIG.replace(
        "listen 127.0.0.1:{port};",
        "listen 127.0.0.1:{port}; listen unix:%s;" % nsock))
    from conftest import free_port
    rport = free_port()
    rp = subprocess.Popen(
        [request.config.getoption("--redis-server"), "--port", str(rport),
         "--bind", "127.0.0.1", "--unixsocket", rsock, "--save", "",
         "--appendonly", "no", "--requirepass", "s3cret", "--dir", sock_dir],
        stdout=subprocess.DEVNULL)
    c = redis.Redis(unix_socket_path=rsock, password="s3cret", db=3)
    wait_for(lambda: os.path.exists(rsock) and _ping(c), 10, "redis")
    path = str(tmp_path / "unix.yaml")
    with open(path, "w") as f:
        f.write("""
nginx:
  unix: %s
  publish_path: /pub/{channel}
redis:
  unix: %s
  password: s3cret
  db: 3
sources:
  - name: u
    type: stream
    keys: [ux]
    target: "{tenant}.{widget}"
""" % (nsock, rsock))
    pub = subprocess.Popen([request.config.getoption("--publisher"), "-c",
                            path], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(cl.get("cmd") == "xread"
                             for cl in c.client_list()), 10, "reading")
        s = sse(n.url("/sub/acme.ux"))
        xadd(c, "ux", "over unix", widget="ux")
        s.read_until(lambda b: b"data: over unix\n\n" in b)
        s.close()
        # the entry is in db 3, where the publisher read it
        assert redis.Redis(unix_socket_path=rsock, password="s3cret",
                           db=0).exists("ux") == 0
    finally:
        pub.send_signal(signal.SIGTERM)
        _, err = pub.communicate(timeout=10)
        rp.terminate()
        rp.wait(10)
        n.stop()  # nginx unlinks its socket on exit: before the dir goes
        shutil.rmtree(sock_dir, ignore_errors=True)
    assert pub.returncode == 0
    assert "publisher: stopping: 1 published, 0 dropped" in \
        publisher_lines(err), err


def test_a_key_template_makes_entries_conflate(request, nginx, r, tmp_path,
                                               redis_server):
    # `key: "{iface}"`: the sidecar sends each entry's field as Pulse-Key,
    # so a throttled subscriber gets the latest sample per interface
    pub = Publisher(request.config.getoption("--publisher"), tmp_path, nginx,
                    redis_server["port"], "kv", name="k",
                    extra='key: "{iface}"')
    try:
        started(r, pub, "kv")
        s = sse(nginx.url("/sub/acme.bw?throttle=2s"))
        xadd(r, "kv", "eth0=0", iface="eth0")
        s.read_until(lambda b: b"eth0=0" in b)
        for i in range(1, 6):
            xadd(r, "kv", "eth0=%d" % i, iface="eth0")
            xadd(r, "kv", "eth1=%d" % i, iface="eth1")
        body = s.read_until(lambda b: b"eth1=5" in b, timeout=10)
        s.close()
        assert [e["data"] for e in datas(body)] == ["eth0=0", "eth0=5",
                                                    "eth1=5"]
    finally:
        pub.stop()
