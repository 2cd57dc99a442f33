"""The sidecar's HTTP ingest on three nodes: each nginx runs
conf.d/pulse-ingest.conf.example, each sidecar
conf.d/publisher-ingest.yaml.example, all share one redis-server. A POST
to node A reaches subscribers on B and C under the same id, a client
resumes on any node, bad requests get a clear status with the ingest still
serving, and a Redis that is down is a 503 "not stored" until it is back."""

import os
import shutil
import signal
import socket
import subprocess

import pytest
import requests

from clients import parse_sse, sse
from conftest import free_port, publisher_lines, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
CONFD = os.path.join(HERE, "..", "..", "conf.d")


def node_conf(sock):
    with open(os.path.join(CONFD, "pulse-ingest.conf.example")) as f:
        conf = f.read()
    conf = conf.replace("unix:/run/pulse-publisher/ingest.sock",
                        "unix:" + sock)
    return conf.replace("listen 80;", "listen 127.0.0.1:{port};")


def sidecar_yaml(nginx_port, redis_port, sock):
    with open(os.path.join(CONFD, "publisher-ingest.yaml.example")) as f:
        y = f.read()
    y = y.replace("port: 80\n", "port: %d\n" % nginx_port)
    y = y.replace("host: 10.0.0.5", "host: 127.0.0.1")
    y = y.replace("port: 6379", "port: %d" % redis_port)
    return y.replace("unix:/run/pulse-publisher/ingest.sock", "unix:" + sock)


class Redis:
    def __init__(self, binary, d):
        self.binary = binary
        self.dir = d
        self.port = free_port()
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL)

        def up():
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              0.2) as s:
                    s.sendall(b"PING\r\n")
                    return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False
        wait_for(up, 10, "redis-server")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def cluster(request, nginx_factory, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ingest"))
    redis_bin = request.config.getoption("--redis-server")
    if not shutil.which(redis_bin):
        pytest.fail("redis-server not found at " + redis_bin)
    redis = Redis(redis_bin, d)
    nodes = []
    for name in "abc":
        sock = os.path.join(d, "ingest-%s.sock" % name)
        n = nginx_factory(node_conf(sock))
        n.allowed.append(r"connect\(\) to unix:.* failed")
        path = os.path.join(d, "publisher-%s.yaml" % name)
        with open(path, "w") as f:
            f.write(sidecar_yaml(n.port, redis.port, sock))
        check = subprocess.run([request.config.getoption("--publisher"),
                                "--check", "-c", path],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen([request.config.getoption("--publisher"),
                                 "-c", path], stderr=subprocess.PIPE,
                                text=True)
        wait_for(lambda: os.path.exists(sock), 10, "the ingest socket")
        nodes.append((n, proc))
    yield {"nodes": [n for n, _ in nodes], "redis": redis}
    for _, proc in nodes:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, publisher_lines(err)
    redis.stop()


def data_events(body):
    return [e for e in parse_sse(body) if "data" in e]


def test_a_post_to_one_node_reaches_every_node_with_the_same_id(cluster):
    a, b, c = cluster["nodes"]
    subs = [sse(n.url("/sub/bw")) for n in (a, b, c)]
    try:
        r = requests.post(a.url("/pub/bw"), data='{"rx": 1}',
                          headers={"Content-Type": "application/json",
                                   "X-EventSource-Event": "bw"})
        assert r.status_code == 202, r.text
        assert r.text.startswith("stored ")
        stream_id = r.headers["Pulse-Stream-Id"]
        assert r.text == "stored %s\n" % stream_id
        got = [data_events(s.read_until(lambda b: b'{"rx": 1}' in b))[-1]
               for s in subs]
    finally:
        for s in subs:
            s.close()
    assert {e["data"] for e in got} == {'{"rx": 1}'}
    assert {e.get("event") for e in got} == {"bw"}
    ids = {e["id"] for e in got}
    assert len(ids) == 1, got
    # the id is the stream entry's (milliseconds and sequence)
    ms, seq = stream_id.split("-")
    assert ids.pop().startswith(str(int(ms) // 1000))


def test_a_client_resumes_on_any_node(cluster):
    a, b, c = cluster["nodes"]
    s = sse(b.url("/sub/resume"))
    assert requests.post(c.url("/pub/resume"), data="r1").status_code == 202
    body = s.read_until(lambda x: b"data: r1\n" in x)
    s.close()
    last = data_events(body)[-1]["id"]
    for i in (2, 3):
        assert requests.post(b.url("/pub/resume"),
                             data="r%d" % i).status_code == 202
    wait_for(lambda: requests.get(
        a.url("/pulse-local/resume"),
        headers={"Accept": "text/json"}).json()["messages"] == 3, 10,
        "node a to have all three")
    s = sse(a.url("/sub/resume"), {"Last-Event-ID": last})
    body = s.read_until(lambda x: b"data: r3\n" in x)
    s.close()
    assert [e["data"] for e in data_events(body)] == ["r2", "r3"]


def test_bad_requests_get_a_clear_status_and_the_ingest_serves_on(cluster):
    a = cluster["nodes"][0]
    r = requests.post(a.url("/pub/x"), data="x",
                      headers={"Pulse-Key": "k" * 300})
    assert r.status_code == 400
    assert "Pulse-Key header" in r.text
    r = requests.post(a.url("/pub/x"), data="x" * (2 << 20))
    assert r.status_code == 413  # nginx's client_max_body_size
    r = requests.get(a.url("/pub/x"))
    assert r.status_code == 403  # limit_except
    assert requests.post(a.url("/pub/x"), data="fine").status_code == 202


def test_redis_down_is_not_stored_until_it_is_back(cluster):
    a = cluster["nodes"][0]
    redis = cluster["redis"]
    redis.stop()
    try:
        r = requests.post(a.url("/pub/down"), data="lost?")
        assert r.status_code == 503
        assert r.text.startswith("not stored: ")
    finally:
        redis.start()
    s = sse(cluster["nodes"][2].url("/sub/down"))
    try:
        wait_for(lambda: requests.post(a.url("/pub/down"), data="back")
                 .status_code == 202, 10, "the ingest to store again")
        body = s.read_until(lambda x: b"data: back\n" in x, 15)
    finally:
        s.close()
    # what was not stored was not delivered
    assert b"lost?" not in body
