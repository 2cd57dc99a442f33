"""The pulse.v1 protocol (subscribe/unsubscribe with resume, publish,
ping, commands through pulse_websocket_upstream, errors), WebSocket
delivery across both workers, a 10,000-message burst, a strict client
(python3-websockets with permessage-deflate), server pings, slow clients
and a worker killed with live sockets."""

import asyncio
import http.server
import json
import os
import signal
import threading
import uuid

import pytest
import requests

from conftest import wait_for
from wsclient import PING, PONG, WsClient

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port} reuseport;
    location ~ ^/pub/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length 20000;
        pulse_deflate_message_for_websocket on;
    }
    location ~ ^/sub/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_websocket_client_heartbeat ping pong;
    }
    location = /v1 {
        pulse_pubsub;
        pulse_max_channels_per_connection 3;
        pulse_message_buffer_length 5;
        pulse_websocket_upstream /command;
        pulse_websocket_identity $arg_user;
    }
    location = /v1ro {
        pulse_subscriber websocket;
        pulse_channel_group ro;
    }
    location ~ ^/v1sub/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
    }
    location = /v1down {
        pulse_pubsub;
        pulse_websocket_upstream /down;
    }
    location = /down {
        internal;
        proxy_pass http://127.0.0.1:1/cmd;
    }
    location = /command {
        internal;
        proxy_pass http://127.0.0.1:{upstream}/cmd;
        subrequest_output_buffer_size 16k;
    }
    location ~ ^/ping/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_websocket_ping_interval 1;
    }
    location ~ ^/slow/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_max_buffered 64k;
    }
}
"""


class Upstream(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if body == b"fail":
            self.send_response(500)
            self.end_headers()
            return
        if body.startswith(b"big:"):
            # past subrequest_output_buffer_size, or within a roomier one
            reply = b"x" * int(body[4:])
            self.send_response(200)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
            return
        reply = json.dumps({"channel": self.headers.get("X-Pulse-Channel"),
                            "identity": self.headers.get("X-Pulse-Identity"),
                            "body": body.decode()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def upstream():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()


@pytest.fixture(scope="module")
def nginx(nginx_factory, upstream):
    return nginx_factory(NGINX_CONFIG.replace("{upstream}", str(upstream)))


def chan():
    return uuid.uuid4().hex


def v1(nginx, path="/v1?user=alice"):
    return WsClient(nginx.port, path, protocols="pulse.v1")


def publish(nginx, ch, body, **headers):
    r = requests.post(nginx.url("/pub/" + ch), data=body, headers=headers)
    assert r.status_code in (201, 202), r.text
    return r


# ------------------------------------------------------------ pulse.v1

def test_v1_subscribe_receives_messages_with_channel_and_id(nginx):
    a, b = chan(), chan()
    c = v1(nginx)
    c.send_json({"type": "subscribe", "channel": a, "id": 1})
    assert c.recv_json() == {"type": "subscribed", "id": 1, "channel": a}
    c.send_json({"type": "subscribe", "channel": b, "id": "two"})
    assert c.recv_json() == {"type": "subscribed", "id": "two", "channel": b}
    c.send_json({"type": "publish", "channel": a, "data": "to a", "id": 3})
    reply = c.recv_json()
    assert reply["type"] == "published" and reply["subscribers"] == 1
    m = c.recv_json()
    assert (m["type"], m["channel"], m["data"], m["id"]) == (
        "message", a, "to a", reply["message_id"])
    c.send_json({"type": "publish", "channel": b, "data": {"rx": 1},
                 "content_type": "application/json", "event": "bw"})
    c.recv_json()
    m = c.recv_json()
    assert (m["channel"], m["data"], m["content_type"], m["event"]) == (
        b, '{"rx":1}', "application/json", "bw")


def test_v1_messages_deflated_at_publish_arrive_compressed(nginx):
    ch = chan()
    c = WsClient(nginx.port, "/v1", protocols="pulse.v1",
                 extensions="permessage-deflate")
    try:
        c.send_json({"type": "subscribe", "channel": ch})
        assert c.recv_json()["type"] == "subscribed"
        body = "session 10.0.0.7 up " * 100
        publish(nginx, ch, body)
        f = c.recv_data()
        assert f.rsv1 and len(f.wire) < len(body)
        m = f.json()
        assert (m["type"], m["channel"], m["data"]) == ("message", ch, body)
    finally:
        c.shutdown()


def test_v1_resume_and_gap(nginx):
    ch = chan()
    c = v1(nginx)
    ids = []
    for i in range(7):  # the buffer holds 5
        c.send_json({"type": "publish", "channel": ch, "data": str(i)})
        ids.append(c.recv_json()["message_id"])
    c.send_json({"type": "subscribe", "channel": ch,
                 "last_event_id": ids[4]})
    assert c.recv_json()["type"] == "subscribed"
    assert [c.recv_json()["data"] for _ in range(2)] == ["5", "6"]
    # resuming from an evicted id: the oldest kept, and the gap is said
    d = v1(nginx)
    d.send_json({"type": "subscribe", "channel": ch, "last_event_id": ids[0]})
    assert d.recv_json() == {"type": "subscribed", "channel": ch, "gap": True}
    assert [d.recv_json()["data"] for _ in range(5)] == [
        "2", "3", "4", "5", "6"]


def test_v1_unsubscribe_stops_delivery(nginx):
    a, b = chan(), chan()
    c = v1(nginx)
    for ch in (a, b):
        c.send_json({"type": "subscribe", "channel": ch})
        c.recv_json()
    c.send_json({"type": "unsubscribe", "channel": a, "id": 9})
    assert c.recv_json() == {"type": "unsubscribed", "id": 9, "channel": a}
    publish(nginx, a, "not for you")
    publish(nginx, b, "for you")
    m = c.recv_json()
    assert (m["channel"], m["data"]) == (b, "for you")
    r = requests.get(nginx.url("/pub/" + a), headers={"Accept": "text/json"})
    assert json.loads(r.text)["subscribers"] == 0


def test_v1_errors_keep_the_socket_open(nginx):
    c = v1(nginx)
    cases = [
        ("not json", "bad_request"),
        ("[1,2]", "bad_request"),
        ('{"type": 5}', "bad_request"),
        ('{"type": "dance", "id": 4}', "unknown_type"),
        ('{"type": "subscribe"}', "bad_request"),
        ('{"type": "subscribe", "channel": 7}', "bad_request"),
        ('{"type": "subscribe", "channel": "x", "last_event_id": "nope"}',
         "bad_request"),
        ('{"type": "unsubscribe", "channel": "never"}', "not_subscribed"),
        ('{"type": "subscribe", "channel": "%s"}' % ("x" * 2000),
         "forbidden"),
    ]
    for text, code in cases:
        c.send_text(text)
        e = c.recv_json()
        assert (e["type"], e["code"]) == ("error", code), (text, e)
        assert e["message"]
    c.send(2, b"\x00binary")
    assert c.recv_json()["code"] == "bad_request"
    c.send_json({"type": "ping", "id": "still"})
    assert c.recv_json() == {"type": "pong", "id": "still"}


def test_v1_limits_channels_per_connection(nginx):
    c = v1(nginx)
    for _ in range(3):
        c.send_json({"type": "subscribe", "channel": chan()})
        assert c.recv_json()["type"] == "subscribed"
    c.send_json({"type": "subscribe", "channel": chan(), "id": 4})
    e = c.recv_json()
    assert (e["code"], e["id"]) == ("too_many_channels", 4)
    c.send_json({"type": "ping"})
    assert c.recv_json()["type"] == "pong"


def test_v1_duplicate_subscribe_is_an_error(nginx):
    ch = chan()
    c = v1(nginx)
    c.send_json({"type": "subscribe", "channel": ch})
    c.recv_json()
    c.send_json({"type": "subscribe", "channel": ch})
    assert c.recv_json()["code"] == "already_subscribed"


def test_v1_publish_needs_a_publisher_location(nginx):
    c = v1(nginx, "/v1ro")
    c.send_json({"type": "publish", "channel": "x", "data": "no", "id": 1})
    e = c.recv_json()
    assert (e["code"], e["id"]) == ("forbidden", 1)
    # channels of /v1ro live in group "ro": not the default group's
    ch = chan()
    c.send_json({"type": "subscribe", "channel": ch})
    c.recv_json()
    publish(nginx, ch, "default group")
    d = v1(nginx)
    d.send_json({"type": "ping"})
    d.recv_json()
    c.send_json({"type": "ping"})
    assert c.recv_json()["type"] == "pong"  # nothing arrived before it


def test_v1_url_channel_is_subscribed_at_once(nginx):
    ch = chan()
    c = WsClient(nginx.port, "/v1sub/" + ch, protocols="pulse.v1")
    publish(nginx, ch, "hi")
    m = c.recv_json()
    assert (m["channel"], m["data"]) == (ch, "hi")


def test_v1_binary_bodies_are_base64(nginx):
    ch = chan()
    c = v1(nginx)
    c.send_json({"type": "subscribe", "channel": ch})
    c.recv_json()
    publish(nginx, ch, b"\xff\x00\xfe")
    m = c.recv_json()
    assert (m["encoding"], m["data"]) == ("base64", "/wD+")


def test_v1_delete_says_gone_and_keeps_the_socket(nginx):
    a, b = chan(), chan()
    c = v1(nginx)
    for ch in (a, b):
        c.send_json({"type": "subscribe", "channel": ch})
        c.recv_json()
    requests.delete(nginx.url("/pub/" + a))
    assert c.recv_json() == {"type": "gone", "channel": a, "status": 410}
    publish(nginx, b, "b lives")
    assert c.recv_json()["data"] == "b lives"


def test_v1_commands_reach_the_upstream_and_reply(nginx):
    c = v1(nginx, "/v1?user=alice")
    c.send_json({"type": "command", "channel": "ops", "id": 1,
                 "data": {"action": "reboot"}})
    r = c.recv_json()
    assert (r["type"], r["id"], r["status"]) == ("reply", 1, 200)
    assert json.loads(r["data"]) == {"channel": "ops", "identity": "alice",
                                     "body": '{"action":"reboot"}'}
    # several in flight, each answered
    for i in range(5):
        c.send_json({"type": "command", "id": i, "data": "n%d" % i})
    got = sorted(c.recv_json()["id"] for _ in range(5))
    assert got == list(range(5))
    # the upstream's error status comes back, not a silent drop
    c.send_json({"type": "command", "id": "f", "data": "fail"})
    e = c.recv_json()
    assert (e["type"], e["id"], e["status"]) == ("reply", "f", 500)
    c.send_json({"type": "ping"})
    assert c.recv_json()["type"] == "pong"


def test_v1_reply_too_big_for_the_hook_location(nginx):
    """A reply past the command location's subrequest_output_buffer_size
    is an upstream_failed error for that command only; one that fits, the
    whole reply."""
    c = v1(nginx, "/v1?user=bob")
    c.send_json({"type": "command", "id": "big", "data": "big:100000"})
    e = c.recv_json()
    assert (e["type"], e["id"], e["code"]) == \
        ("error", "big", "upstream_failed")
    assert "502" in e["message"]
    c.send_json({"type": "command", "id": "fits", "data": "big:16000"})
    r = c.recv_json()
    assert (r["type"], r["id"], r["status"]) == ("reply", "fits", 200)
    assert r["data"] == "x" * 16000
    c.send_json({"type": "ping"})
    assert c.recv_json()["type"] == "pong"
    assert "hook answer bigger than subrequest_output_buffer_size (16384)" \
        in nginx.log()


def test_v1_unreachable_upstream_is_an_error_frame(nginx):
    c = v1(nginx, "/v1down")
    c.send_json({"type": "command", "id": 1, "data": "x"})
    e = c.recv_json()
    assert (e["type"], e["id"], e["code"]) == ("error", 1, "upstream_failed")
    assert "502" in e["message"]
    c.send_json({"type": "ping"})
    assert c.recv_json()["type"] == "pong"


def test_v1_commands_without_upstream(nginx):
    c = v1(nginx, "/v1ro")
    c.send_json({"type": "command", "id": 1, "data": "x"})
    assert c.recv_json()["code"] == "not_configured"


# ----------------------------------------------- heartbeat, pings, slow

def test_heartbeat_on_a_subscriber_location(nginx):
    c = WsClient(nginx.port, "/sub/" + chan())
    c.send_text("ping")
    assert c.recv_data().payload == b"pong"


def test_no_pong_closes(nginx):
    c = WsClient(nginx.port, "/ping/" + chan())
    assert c.recv_frame(timeout=3).opcode == PING  # not answered
    f = c.expect_close(timeout=4)
    assert f.close_code == 1001
    assert c.closed_by_server()


def test_answered_pings_keep_the_socket(nginx):
    c = WsClient(nginx.port, "/ping/" + chan())
    for _ in range(3):
        f = c.recv_frame(timeout=3)
        assert f.opcode == PING
        c.send(PONG, f.payload)


def test_slow_websocket_is_dropped_and_others_unaffected(nginx):
    ch = chan()
    slow = WsClient(nginx.port, "/slow/" + ch, rcvbuf=4096)
    fast = WsClient(nginx.port, "/slow/" + ch)
    body = "x" * 32000
    n = 300  # ~10 MB: more than the kernel buffers of the slow socket hold
    for i in range(n):
        publish(nginx, ch, body)
        assert len(fast.recv_data().payload) == 32000
    # the slow one was closed once 64k were pending
    assert wait_for(lambda: slow.closed_by_server(0.2), 10, "slow dropped")


# --------------------------------------------- workers, burst, strict client

def test_fan_out_across_both_workers(nginx):
    ch = chan()
    clients = [WsClient(nginx.port, "/sub/" + ch) for _ in range(40)]
    per = nginx.connections_per_worker()
    assert len([n for n in per.values() if n > 0]) == 2, per
    publish(nginx, ch, "everyone")
    for c in clients:
        assert c.recv_data().payload == b"everyone"
        c.shutdown()


def test_burst_of_10000_in_order_nothing_lost(nginx):
    ch = chan()
    c = WsClient(nginx.port, "/sub/" + ch, protocols="ws+meta.nchan")
    s = requests.Session()
    for i in range(10000):
        s.post(nginx.url("/pub/" + ch), data=str(i))
    for i in range(10000):
        p = c.recv_data(timeout=20).payload
        assert p.split(b"\n\n", 1)[1] == str(i).encode()


def test_resume_after_disconnect_no_loss_no_duplicates(nginx):
    ch = chan()
    c = WsClient(nginx.port, "/sub/" + ch, protocols="ws+meta.nchan")
    for i in range(5):
        publish(nginx, ch, str(i))
    last = None
    for i in range(5):
        p = c.recv_data().payload
        last = p.split(b"\n", 1)[0][4:].decode()
    c.shutdown()
    for i in range(5, 10):
        publish(nginx, ch, str(i))
    c = WsClient(nginx.port, "/sub/%s?last_event_id=%s" % (ch, last),
                 protocols="ws+meta.nchan")
    got = [c.recv_data().payload.split(b"\n\n", 1)[1] for _ in range(5)]
    assert got == [str(i).encode() for i in range(5, 10)]
    publish(nginx, ch, "10")
    assert c.recv_data().payload.endswith(b"\n\n10")


def test_strict_client_with_permessage_deflate(nginx):
    websockets = pytest.importorskip("websockets")

    async def run():
        ch = chan()
        url = "ws://127.0.0.1:%d/sub/%s" % (nginx.port, ch)
        async with websockets.connect(url, compression="deflate") as ws:
            assert "permessage-deflate" in ws.response_headers[
                "Sec-WebSocket-Extensions"]
            loop = asyncio.get_running_loop()
            big = "bandwidth " * 2000
            await loop.run_in_executor(None, publish, nginx, ch, big)
            await loop.run_in_executor(None, publish, nginx, ch, b"\x01\x02",
                                       )
            assert await asyncio.wait_for(ws.recv(), 5) == big
            got = await asyncio.wait_for(ws.recv(), 5)
            assert got == "\x01\x02"
            await ws.ping(b"strict")
            await ws.send("ping")  # the heartbeat
            assert await asyncio.wait_for(ws.recv(), 5) == "pong"
        assert ws.close_code == 1000
    asyncio.run(run())


def test_sigkill_a_worker_with_live_sockets(nginx):
    ch = chan()
    clients = [WsClient(nginx.port, "/sub/" + ch) for _ in range(20)]
    victim = nginx.worker_pids()[0]
    nginx.allowed.append(r"exited on signal 9")
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in nginx.worker_pids()
             and len(nginx.worker_pids()) == 2, 10, "respawn")
    publish(nginx, ch, "after the kill")
    alive = 0
    for c in clients:
        try:
            if c.recv_data(timeout=2).payload == b"after the kill":
                alive += 1
        except (ConnectionError, OSError):
            pass
    assert alive > 0
    fresh = WsClient(nginx.port, "/sub/" + ch + "?last_event_id=0")
    assert fresh.recv_data().payload == b"after the kill"


def test_reload_closes_sockets_cleanly_and_keeps_channels(nginx):
    ch = chan()
    meta = [WsClient(nginx.port, "/sub/" + ch, protocols="ws+meta.nchan")
            for _ in range(6)]
    j = v1(nginx)
    j.send_json({"type": "subscribe", "channel": ch})
    j.recv_json()
    publish(nginx, ch, "before")
    last = None
    for c in meta:
        p = c.recv_data().payload
        last = p.split(b"\n", 1)[0][4:].decode()
    assert j.recv_json()["data"] == "before"
    nginx.reload()
    # every old socket gets a close frame, not a dropped connection
    for i, c in enumerate(meta + [j]):
        try:
            f = c.expect_close(timeout=10)
        except ConnectionError:
            raise AssertionError("socket %d closed without a close frame" % i)
        assert f.close_code in (1000, 1001), (i, f)
    publish(nginx, ch, "after")
    c = WsClient(nginx.port, "/sub/%s?last_event_id=%s" % (ch, last),
                 protocols="ws+meta.nchan")
    assert c.recv_data().payload.endswith(b"\n\nafter")


def test_catch_up_larger_than_the_buffer_closes_after_what_fits(nginx):
    ch = chan()
    for i in range(30):
        publish(nginx, ch, "%02d" % i + "x" * 4000)
    got = []
    last = "0"
    rounds = 0
    for _ in range(10):  # a few reconnects get everything, once each
        rounds += 1
        c = WsClient(nginx.port, "/slow/%s?last_event_id=%s" % (ch, last),
                     protocols="ws+meta.nchan")
        while True:
            f = c.recv_frame()
            if f.opcode == 0x8:
                break
            head, body = f.payload.split(b"\n\n", 1)
            last = head.split(b"\n")[0][4:].decode()
            got.append(body[:2])
            if len(got) == 30:
                break
        c.shutdown()
        if len(got) == 30:
            break
    assert got == [b"%02d" % i for i in range(30)]
    assert rounds > 1  # 120 KB does not fit in 64k: closed at least once
