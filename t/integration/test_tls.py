"""Every transport over TLS, the way dashboards are deployed. Writes then go
through OpenSSL (c->send is ngx_ssl_write, send_chain ngx_ssl_send_chain,
and OpenSSL holds up to a record of its own), not straight to the socket:
big messages, slow readers, a reader over its limit, WebSocket close,
HTTP/2 by ALPN, and a reload with live streams. Teardown fails on any
[crit] or [alert], which is where nginx reports SSL errors."""

import os
import subprocess
import threading
import time
import uuid

import pytest
import requests

from clients import parse_sse, sse, sse_count
from conftest import wait_for
from wsclient import CLOSE, PONG, TEXT, WsClient

pytestmark = pytest.mark.filterwarnings(
    "ignore::urllib3.exceptions.InsecureRequestWarning")

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port} ssl http2 reuseport;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    location ~ ^/pub/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length 1000;
    }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
    location ~ ^/small/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_max_buffered 64k;
    }
    location ~ ^/ps/(.*)$ { pulse_pubsub; pulse_channel_id $1; }
}
"""


@pytest.fixture(scope="module")
def nginx(nginx_factory, tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tls"))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", os.path.join(d, "key.pem"),
         "-out", os.path.join(d, "cert.pem"), "-days", "2",
         "-subj", "/CN=localhost"],
        check=True, capture_output=True)
    return nginx_factory(NGINX_CONFIG.replace("{dir}", d))


def url(nginx, path):
    return "https://127.0.0.1:%d%s" % (nginx.port, path)


def chan():
    return uuid.uuid4().hex


def pub(nginx, ch, body, **headers):
    r = requests.post(url(nginx, "/pub/" + ch), data=body, headers=headers,
                      verify=False)
    assert r.status_code in (201, 202), r.text
    return r


def datas(body):
    return [e["data"] for e in parse_sse(body) if "data" in e]


def test_eventsource_over_tls_on_both_workers_with_big_messages(nginx):
    ch = chan()
    subs = [sse(url(nginx, "/sub/" + ch)) for _ in range(30)]
    try:
        per_worker = nginx.connections_per_worker()
        assert len(per_worker) == 2, per_worker
        # every tenth message is 100 KiB: several TLS records, partial
        # writes
        sent = [("%d:" % i) + ("x" * 100000 if i % 10 == 0 else "m")
                for i in range(50)]
        for body in sent:
            pub(nginx, ch, body)
        for s in subs:
            body = s.read_until(lambda b: sse_count(b) >= 50, 30)
            assert datas(body) == sent
    finally:
        for s in subs:
            s.close()


def test_slow_tls_reader_gets_everything_in_order(nginx):
    ch = chan()
    slow = sse(url(nginx, "/sub/" + ch), rcvbuf=4096)
    fast = sse(url(nginx, "/sub/" + ch))
    try:
        sent = ["%02d:" % i + "y" * 32768 for i in range(40)]  # 1.3 MB
        for body in sent:
            assert pub(nginx, ch, body).status_code == 201
        assert datas(fast.read_until(lambda b: sse_count(b) >= 40, 30)) == sent
        time.sleep(0.5)  # the slow one's queue and OpenSSL's buffer fill
        assert datas(slow.read_until(lambda b: sse_count(b) >= 40, 30)) == sent
        # and it is live again
        pub(nginx, ch, "after")
        slow.read_until(lambda b: b.endswith(b"data: after\n\n"), 10)
    finally:
        slow.close()
        fast.close()


def subscribers(nginx, ch):
    r = requests.get(url(nginx, "/pub/" + ch), verify=False,
                     headers={"Accept": "text/json"})
    return r.json()["subscribers"]


def test_stalled_tls_reader_over_its_limit_is_dropped_and_resumes(nginx):
    ch = chan()
    stalled = sse(url(nginx, "/small/" + ch), rcvbuf=4096)
    other = sse(url(nginx, "/small/" + ch))
    sent = []
    try:
        # 16 KiB messages until the stalled one is dropped: past its 64k
        # limit, once the kernel's send buffer (autotuned, up to 4 MiB
        # here) is full; the other keeps up and stays
        for i in range(800):
            sent.append("%03d:" % i + "z" * 16384)
            pub(nginx, ch, sent[-1])
            other.read_until(lambda b: sse_count(b) >= len(sent), 10)
            if i % 10 == 9 and subscribers(nginx, ch) == 1:
                break
        assert subscribers(nginx, ch) == 1, "the stalled reader was kept"
        assert datas(other.body) == sent
        # the stalled one got a prefix of the stream, then its end
        got = datas(stalled.read_to_end(30))
        assert stalled.closed and 0 < len(got) < len(sent)
        assert got == sent[:len(got)]
    finally:
        stalled.close()
        other.close()
    # it resumes from its last id with nothing lost or repeated (the
    # catch-up itself may need a few reconnects under a 64k limit)
    last = [e for e in parse_sse(stalled.body) if "data" in e][-1]["id"]
    for _ in range(len(sent)):
        s = sse(url(nginx, "/small/" + ch), {"Last-Event-ID": last})
        try:
            body = s.read_to_end(2)
        except TimeoutError:
            body = s.body
        s.close()
        evs = [e for e in parse_sse(body) if "data" in e]
        got += [e["data"] for e in evs]
        if evs:
            last = evs[-1]["id"]
        if len(got) >= len(sent):
            break
    assert got == sent


def test_websocket_over_tls(nginx):
    ch = chan()
    c = WsClient(nginx.port, "/ps/" + ch, tls=True)
    watcher = WsClient(nginx.port, "/sub/" + ch, tls=True)
    try:
        big = "b" * 200000
        pub(nginx, ch, "hello")
        pub(nginx, ch, big)
        for w in (c, watcher):
            assert w.recv_data().payload == b"hello"
            f = w.recv_data(10)
            assert f.opcode == TEXT and f.payload == big.encode()
        c.send_text("from the socket")  # publishes on a pubsub location
        assert watcher.recv_data().payload == b"from the socket"
        c.send(0x9, b"tls ping")
        f = c.recv_frame()
        while f.opcode != PONG:
            f = c.recv_frame()
        assert f.payload == b"tls ping"
        c.close(1000, "bye")
        f = c.expect_close()
        assert f.opcode == CLOSE and (f.close_code, f.close_reason) == (
            1000, "bye")
        assert c.closed_by_server()
        pub(nginx, ch, "still served")
        assert watcher.recv_data().payload == b"still served"
    finally:
        c.shutdown()
        watcher.shutdown()


def test_longpoll_over_tls(nginx):
    ch = chan()
    pub(nginx, ch, "first")
    r = requests.get(url(nginx, "/sub/" + ch), verify=False, timeout=10)
    assert (r.status_code, r.text) == (200, "first")
    got = {}

    def poll():
        got["r"] = requests.get(
            url(nginx, "/sub/" + ch), verify=False, timeout=10,
            headers={"If-Modified-Since": r.headers["Last-Modified"],
                     "If-None-Match": r.headers["Etag"]})
    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.3)  # the poll is held
    pub(nginx, ch, "second")
    t.join(10)
    assert (got["r"].status_code, got["r"].text) == (200, "second")


def test_eventsource_over_http2_by_alpn(nginx):
    ch = chan()
    pub(nginx, ch, "before")
    p = subprocess.Popen(
        ["curl", "-skNv", "--http2", "--max-time", "5",
         "-H", "Accept: text/event-stream", url(nginx, "/sub/" + ch)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = b""
    try:
        deadline = time.monotonic() + 5
        while b"data: before\n\n" not in out and time.monotonic() < deadline:
            out += p.stdout.read1(4096)
        pub(nginx, ch, "after")
        while b"data: after\n\n" not in out and time.monotonic() < deadline:
            out += p.stdout.read1(4096)
    finally:
        p.kill()
        _, err = p.communicate()
    assert b"< HTTP/2 200" in err
    assert out.startswith(b": hi\n\n")
    assert b"data: before\n\n" in out and b"data: after\n\n" in out


def test_reload_ends_tls_streams_and_they_resume(nginx):
    ch = chan()
    subs = [sse(url(nginx, "/sub/" + ch)) for _ in range(10)]
    ws = WsClient(nginx.port, "/sub/" + ch, tls=True)
    pub(nginx, ch, "before")
    last = []
    for s in subs:
        body = s.read_until(lambda b: b"data: before\n\n" in b)
        last.append([e for e in parse_sse(body) if "data" in e][-1]["id"])
    assert ws.recv_data().payload == b"before"
    nginx.reload()
    for s in subs:
        s.expect_end(10)
    f = ws.expect_close(10)
    assert f.close_code == 1001
    ws.shutdown()
    wait_for(lambda: len(nginx.worker_pids()) == 2, 10, "new workers")
    pub(nginx, ch, "after")
    for lid in last:
        s = sse(url(nginx, "/sub/" + ch), {"Last-Event-ID": lid})
        body = s.read_until(lambda b: b"data: after\n\n" in b)
        s.close()
        assert datas(body) == ["after"]
