"""nchan's WebSocket behaviour, run against the installed nchan and against
Pulse with the same config modulo the prefix: frames, ws+meta.nchan, resume,
close codes, publishing over the socket, heartbeat and timeout. What the
client sees must be identical, message ids aside."""

import re
import uuid

import pytest
import requests

from clients import both
from wsclient import BINARY, PING, PONG, TEXT, WsClient

CONFIG = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.*)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
    location ~ ^/wspub/(.*)$ {
        pulse_publisher websocket; pulse_channel_id $1;
    }
    location ~ ^/ps/(.*)$ { pulse_pubsub; pulse_channel_id $1; }
    location ~ ^/zpub/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_deflate_message_for_websocket on;
    }
    location ~ ^/hb/(.*)$ {
        pulse_pubsub; pulse_channel_id $1;
        pulse_websocket_client_heartbeat PING PONG;
    }
    location ~ ^/timeout/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_timeout 1s;
    }
    location ~ ^/ping/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_websocket_ping_interval 1;
    }
}
"""

ID_RE = re.compile(rb"\d{9,}:\d+")


@pytest.fixture(scope="module")
def servers(nginx_factory):
    return {flavor: nginx_factory(CONFIG, flavor=flavor)
            for flavor in ("nchan", "pulse")}


def norm(b):
    return ID_RE.sub(b"<ID>", b)


def pub(n, ch, body, ctype=None):
    h = {"Content-Type": ctype} if ctype else {}
    return requests.post(n.url("/pub/" + ch), data=body, headers=h)


def test_frames_text_and_binary(servers):
    def run(n):
        ch = uuid.uuid4().hex
        c = WsClient(n.port, "/sub/" + ch)
        pub(n, ch, "hello", "text/plain")
        pub(n, ch, b"\x00\x01\x02", "application/octet-stream")
        pub(n, ch, "")
        out = [(f.opcode, f.payload) for f in
               (c.recv_data(), c.recv_data(), c.recv_data())]
        c.shutdown()
        return out
    assert both(servers, run) == [(TEXT, b"hello"),
                                  (BINARY, b"\x00\x01\x02"), (TEXT, b"")]


def test_meta_framing_and_resume(servers):
    def run(n):
        ch = uuid.uuid4().hex
        pub(n, ch, "one", "text/plain")
        pub(n, ch, "two")
        c = WsClient(n.port, "/sub/" + ch + "?last_event_id=0",
                     protocols="ws+meta.nchan")
        first = c.recv_data().payload
        second = c.recv_data().payload
        c.shutdown()
        last = ID_RE.search(first).group().decode()
        c = WsClient(n.port, "/sub/%s?last_event_id=%s" % (ch, last),
                     protocols="ws+meta.nchan")
        again = c.recv_data().payload
        c.shutdown()
        return c.protocol, norm(first), norm(second), norm(again)
    assert both(servers, run) == (
        "ws+meta.nchan", b"id: <ID>\ncontent-type: text/plain\n\none",
        b"id: <ID>\n\ntwo", b"id: <ID>\n\ntwo")


def test_delete_closes_1001_410_gone(servers):
    def run(n):
        ch = uuid.uuid4().hex
        c = WsClient(n.port, "/sub/" + ch)
        requests.post(n.url("/pub/" + ch), data="x")
        c.recv_data()
        requests.delete(n.url("/pub/" + ch))
        f = c.expect_close()
        return f.close_code, f.close_reason, c.closed_by_server()
    assert both(servers, run) == (1001, "410 Gone", True)


def test_publishing_to_a_subscriber_closes_1008(servers):
    # nchan 1.3.6 cuts the reason to "Publish" (a length bug); Pulse sends
    # the reason its reference documents.
    out = {}
    for flavor, n in servers.items():
        c = WsClient(n.port, "/sub/" + uuid.uuid4().hex)
        c.send_text("not allowed")
        f = c.expect_close()
        out[flavor] = (f.close_code, f.close_reason, c.closed_by_server())
    assert out["nchan"] == (1008, "Publish", True)
    assert out["pulse"] == (1008, "Publishing not allowed.", True)


def test_websocket_publisher_replies_channel_info(servers):
    def run(n):
        ch = uuid.uuid4().hex
        c = WsClient(n.port, "/wspub/" + ch,
                     headers={"Accept": "application/json"})
        c.send_text("one")
        c.send(BINARY, b"\x00two")
        replies = [c.recv_data().payload for _ in range(2)]
        r = requests.get(n.url("/sub/" + ch) + "?last_event_id=0",
                         headers={"Accept": "text/event-stream"},
                         stream=True, timeout=5)
        r.close()
        c.shutdown()
        return [re.sub(rb'"requested": \d+', b"", norm(x)) for x in replies]
    out = both(servers, run)
    assert b'"messages": 1' in out[0] and b'"messages": 2' in out[1]


def test_pubsub_socket_echoes_without_reply(servers):
    def run(n):
        ch = uuid.uuid4().hex
        c = WsClient(n.port, "/ps/" + ch)
        c.send_text("echo")
        f = c.recv_data()
        c.send(PING, b"p")
        g = c.recv_frame()  # the pong, not a channel-info reply
        c.shutdown()
        return (f.opcode, f.payload), (g.opcode, g.payload)
    assert both(servers, run) == ((TEXT, b"echo"), (PONG, b"p"))


def test_client_heartbeat(servers):
    # (nchan answers heartbeats only where the socket may publish; Pulse
    # answers them on subscriber locations too: see test_websocket_pulse)
    def run(n):
        ch = uuid.uuid4().hex
        c = WsClient(n.port, "/hb/" + ch)
        c.send_text("PING")
        f = c.recv_data()
        c.send_text("not a heartbeat")
        g = c.recv_data()
        c.shutdown()
        return (f.opcode, f.payload), (g.opcode, g.payload)
    assert both(servers, run) == ((TEXT, b"PONG"), (TEXT, b"not a heartbeat"))


def test_subscriber_timeout_close(servers):
    def run(n):
        c = WsClient(n.port, "/timeout/" + uuid.uuid4().hex)
        f = c.expect_close(timeout=5)
        return f.close_code, f.close_reason
    assert both(servers, run) == (1000, "408 408 Request Timeout")


def test_server_pings(servers):
    def run(n):
        c = WsClient(n.port, "/ping/" + uuid.uuid4().hex)
        f = c.recv_frame(timeout=3)
        c.shutdown()
        return f.opcode
    assert both(servers, run) == PING


def test_handshake_errors(servers):
    def run(n):
        url = n.url("/sub/x")
        h = {"Upgrade": "websocket", "Connection": "Upgrade"}
        out = []
        for extra in ({}, {"Sec-WebSocket-Version": "7"},
                      {"Sec-WebSocket-Version": "13"}):
            r = requests.get(url, headers=dict(h, **extra))
            out.append((r.status_code, r.text))
        return out
    both(servers, run)


def test_unknown_opcode_closes_the_socket(servers):
    # nchan answers an unknown opcode with a bare close frame; Pulse closes
    # with 1002 as RFC 6455 asks. Both end the connection.
    for flavor, n in servers.items():
        c = WsClient(n.port, "/sub/" + uuid.uuid4().hex)
        c.send(0x3, b"x")
        f = c.expect_close()
        assert f.close_code == (1002 if flavor == "pulse" else None)


def test_deflated_frames_are_byte_identical(servers):
    # A message deflated at publish time, to a plain and a ws+meta.nchan
    # subscriber with permessage-deflate. The compressed bytes on the wire
    # are nchan's, ids aside: the body as deflated once, and for meta the
    # header in stored blocks before those same bytes.
    body = b"rx 1234 tx 5678 " * 40

    def run(n):
        ch = uuid.uuid4().hex
        plain = WsClient(n.port, "/sub/" + ch, extensions="permessage-deflate")
        meta = WsClient(n.port, "/sub/" + ch, protocols="ws+meta.nchan",
                        extensions="permessage-deflate")
        r = requests.post(n.url("/zpub/" + ch), data=body,
                          headers={"Content-Type": "text/plain"})
        assert r.status_code == 201
        fp, fm = plain.recv_data(), meta.recv_data()
        plain.shutdown()
        meta.shutdown()
        return fp.rsv1, fp.wire, fm.rsv1, norm(fm.wire), norm(fm.payload)
    p_rsv1, p_wire, m_rsv1, m_wire, m_payload = both(servers, run)
    assert p_rsv1 and m_rsv1 and len(p_wire) < len(body) / 4
    assert m_wire.endswith(p_wire)
    assert m_payload == b"id: <ID>\ncontent-type: text/plain\n\n" + body
