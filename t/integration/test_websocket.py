"""WebSocket frame-level conformance, modelled on the Autobahn testsuite's
case groups (1 framing, 2 ping/pong, 3 reserved bits, 4 opcodes,
5 fragmentation, 6 UTF-8, 7 close handling, 9 big payloads, 12/13
permessage-deflate), plus the handshake. Frames are made by hand
(wsclient.py). The echo server is a pulse_pubsub location: a socket there
publishes every message it sends to its own channel and receives it back.

Every failing case checks the close code the server sends, that it then
closes the TCP connection, and that the server still serves others."""

import os
import struct
import uuid
import zlib

import pytest
import requests

from wsclient import (BINARY, CLOSE, CONT, PING, PONG, TEXT, WsClient,
                      deflate_raw, frame_bytes)

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/echo/(.*)$ {
        pulse_pubsub; pulse_channel_id $1;
        pulse_subscriber_first_message newest;
        pulse_message_buffer_length 100;
        pulse_websocket_max_message_size 2m;
    }
    location ~ ^/zecho/(.*)$ {
        pulse_pubsub; pulse_channel_id $1;
        pulse_subscriber_first_message newest;
        pulse_deflate_message_for_websocket on;
    }
    location ~ ^/small/(.*)$ {
        pulse_pubsub; pulse_channel_id $1;
        pulse_websocket_max_message_size 1k;
    }
}
"""


def chan():
    return uuid.uuid4().hex


@pytest.fixture
def echo(nginx):
    clients = []

    def make(path="/echo/", **kw):
        c = WsClient(nginx.port, path + chan(), **kw)
        clients.append(c)
        return c
    yield make
    for c in clients:
        c.shutdown()


def still_serves(nginx):
    c = WsClient(nginx.port, "/echo/" + chan())
    c.send_text("alive?")
    assert c.recv_data().payload == b"alive?"
    c.close()
    assert c.expect_close().close_code == 1000
    c.shutdown()


def expect_failure(nginx, c, code):
    f = c.expect_close()
    assert f.close_code == code, f
    assert c.closed_by_server(), "the server must close the TCP connection"
    still_serves(nginx)
    return f


# ------------------------------------------------------------ handshake

def raw_handshake(nginx, headers):
    import socket
    s = socket.create_connection(("127.0.0.1", nginx.port), timeout=5)
    req = "GET /echo/x HTTP/1.1\r\nHost: x\r\n" + "".join(
        "%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
    s.sendall(req.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    s.close()
    return data


def test_handshake_errors_are_nchans_400s(nginx):
    base = {"Upgrade": "websocket", "Connection": "Upgrade"}
    out = raw_handshake(nginx, base)
    assert out.startswith(b"HTTP/1.1 400")
    out = raw_handshake(nginx, dict(base, **{"Sec-WebSocket-Version": "8",
                                             "Sec-WebSocket-Key": "x"}))
    assert out.startswith(b"HTTP/1.1 400")
    assert b"Sec-WebSocket-Version: 13" in out
    out = raw_handshake(nginx, dict(base, **{"Sec-WebSocket-Version": "13"}))
    assert out.startswith(b"HTTP/1.1 400")


def test_handshake_error_bodies(nginx):
    url = nginx.url("/echo/x")
    h = {"Upgrade": "websocket", "Connection": "Upgrade"}
    r = requests.get(url, headers=h)
    assert (r.status_code, r.text) == (
        400, "No Sec-Websocket-Version header present")
    r = requests.get(url, headers=dict(h, **{"Sec-WebSocket-Version": "12"}))
    assert (r.status_code, r.text) == (
        400, "Unsupported websocket protocol version "
             "(only version 13 is supported)")
    r = requests.get(url, headers=dict(h, **{"Sec-WebSocket-Version": "13"}))
    assert (r.status_code, r.text) == (400, "No Sec-Websocket-Key header present")
    r = requests.get(url, headers=dict(h, **{"Sec-WebSocket-Version": "13",
                                             "Sec-WebSocket-Key": "short"}))
    assert (r.status_code, r.text) == (400, "Invalid Sec-WebSocket-Key header")
    still_serves(nginx)


def test_subprotocols(echo):
    assert echo(protocols="ws+meta.nchan").protocol == "ws+meta.nchan"
    assert echo(protocols="chat, pulse.v1").protocol == "pulse.v1"
    # an unknown one is not echoed (nchan sends an empty header, which
    # browsers reject)
    assert echo(protocols="chat").protocol is None


# ------------------------------------------------------- 1: framing

@pytest.mark.parametrize("n", [0, 125, 126, 127, 128, 65535, 65536, 1 << 20])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_1_echo_payload_lengths(echo, opcode, n):
    c = echo()
    payload = b"*" * n if opcode == TEXT else os.urandom(n)
    c.send(opcode, payload)
    f = c.recv_data(timeout=15)
    assert f.payload == payload
    # a binary frame is published as application/octet-stream and comes
    # back binary
    assert f.opcode == opcode


def test_1_frames_chopped_into_single_bytes(echo):
    c = echo()
    data = frame_bytes(TEXT, b"chopped") + frame_bytes(BINARY, b"\x00\x01")
    for i in range(len(data)):
        c.send_raw(data[i:i + 1])
    assert c.recv_data().payload == b"chopped"
    assert c.recv_data().payload == b"\x00\x01"


# ----------------------------------------------------- 2: ping / pong

@pytest.mark.parametrize("payload", [b"", b"ping", bytes(range(125)),
                                     b"\xff\xfe\x00"])
def test_2_ping_gets_pong_with_the_same_payload(echo, payload):
    c = echo()
    c.send(PING, payload)
    f = c.recv_frame()
    assert (f.opcode, f.payload) == (PONG, payload)


def test_2_ping_over_125_bytes_closes_1002(nginx, echo):
    c = echo()
    c.send(PING, b"x" * 126)
    expect_failure(nginx, c, 1002)


def test_2_unsolicited_pong_is_ignored(echo):
    c = echo()
    c.send(PONG, b"unsolicited")
    c.send(PING, b"after")
    assert c.recv_frame().payload == b"after"


def test_2_ten_pings_ten_pongs_in_order(echo):
    c = echo()
    for i in range(10):
        c.send(PING, b"%d" % i)
    assert [c.recv_frame().payload for _ in range(10)] == [
        b"%d" % i for i in range(10)]


# --------------------------------------------------- 3: reserved bits

@pytest.mark.parametrize("rsv", [1, 2, 3, 4, 5, 6, 7])
def test_3_reserved_bits_close_1002(nginx, echo, rsv):
    c = echo()
    c.send_text("before")
    assert c.recv_data().payload == b"before"
    c.send(TEXT, b"bad", rsv=rsv)
    expect_failure(nginx, c, 1002)


def test_3_reserved_bit_on_ping_closes_1002(nginx, echo):
    c = echo()
    c.send(PING, b"x", rsv=4)
    expect_failure(nginx, c, 1002)


# --------------------------------------------------------- 4: opcodes

@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_4_reserved_opcodes_close_1002(nginx, echo, opcode):
    c = echo()
    c.send(opcode, b"x")
    expect_failure(nginx, c, 1002)


def test_4_unmasked_client_frame_closes_1002(nginx, echo):
    c = echo()
    c.send(TEXT, b"naked", mask=False)
    expect_failure(nginx, c, 1002)


# -------------------------------------------------- 5: fragmentation

def test_5_two_fragments(echo):
    c = echo()
    c.send(TEXT, b"frag", fin=False)
    c.send(CONT, b"ments")
    assert c.recv_data().payload == b"fragments"


def test_5_ping_between_fragments(echo):
    c = echo()
    c.send(TEXT, b"a", fin=False)
    c.send(PING, b"mid")
    c.send(CONT, b"b", fin=False)
    c.send(CONT, b"c")
    assert c.recv_frame().payload == b"mid"
    assert c.recv_data().payload == b"abc"


def test_5_many_one_byte_fragments(echo):
    c = echo()
    text = b"0123456789" * 10
    c.send(BINARY, text[:1], fin=False)
    for i in range(1, len(text) - 1):
        c.send(CONT, text[i:i + 1], fin=False)
    c.send(CONT, text[-1:])
    f = c.recv_data()
    assert (f.opcode, f.payload) == (BINARY, text)


@pytest.mark.parametrize("frames", [
    [(CONT, b"lone", True)],
    [(CONT, b"lone", False)],
    [(TEXT, b"a", False), (TEXT, b"b", True)],
    [(TEXT, b"a", False), (BINARY, b"b", True)],
    [(PING, b"fragmented", False)],
    [(TEXT, b"a", False), (PING, b"p", False), (CONT, b"b", True)],
], ids=["lone-continuation", "lone-continuation-nofin", "text-in-text",
        "binary-in-text", "fragmented-ping", "fragmented-ping-inside"])
def test_5_bad_fragmentation_closes_1002(nginx, echo, frames):
    c = echo()
    for op, payload, fin in frames:
        c.send(op, payload, fin=fin)
    expect_failure(nginx, c, 1002)


# ------------------------------------------------------------ 6: UTF-8

VALID_UTF8 = ["κόσμε", "\u0080", "\u07ff", "\u0800", "\uffff", "\U00010000",
              "\U0010ffff", "\ufeff", "Hello-µ@ßöäüàá-UTF-8!!"]
INVALID_UTF8 = [b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80e",
                b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe0\x80\xaf",
                b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xff", b"\xfe",
                b"\x80", b"\xbf", b"\xc0", b"\xf8\x88\x80\x80\x80",
                b"\xce", b"\xe1\xbd", b"\xf0\x9f\x98"]


@pytest.mark.parametrize("text", VALID_UTF8)
def test_6_valid_utf8_echoes(echo, text):
    c = echo()
    c.send_text(text)
    assert c.recv_data().text == text


@pytest.mark.parametrize("data", INVALID_UTF8)
def test_6_invalid_utf8_closes_1007(nginx, echo, data):
    c = echo()
    c.send(TEXT, data)
    f = expect_failure(nginx, c, 1007)
    assert f.close_reason == "Invalid text frame (not UTF8)."


def test_6_valid_character_split_across_fragments(echo):
    c = echo()
    text = "€uro".encode()
    c.send(TEXT, text[:1], fin=False)
    c.send(CONT, text[1:2], fin=False)
    c.send(CONT, text[2:])
    assert c.recv_data().text == "€uro"


def test_6_invalid_sequence_split_across_fragments(nginx, echo):
    c = echo()
    c.send(TEXT, b"\xce", fin=False)
    c.send(CONT, b"\xff")
    expect_failure(nginx, c, 1007)


def test_6_binary_is_not_checked(echo):
    c = echo()
    c.send(BINARY, b"\xff\xfe")
    assert c.recv_data().payload == b"\xff\xfe"


# -------------------------------------------------------- 7: close

@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                  1010, 1011, 3000, 3999, 4000, 4999])
def test_7_valid_close_codes_are_echoed(nginx, echo, code):
    c = echo()
    c.close(code, "bye")
    f = c.expect_close()
    assert (f.close_code, f.close_reason) == (code, "bye")
    assert c.closed_by_server()


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1012, 1016,
                                  1100, 2000, 2999, 5000, 65535])
def test_7_invalid_close_codes_close_1002(nginx, echo, code):
    c = echo()
    c.close(code)
    expect_failure(nginx, c, 1002)


def test_7_empty_close_is_echoed_empty(echo):
    c = echo()
    c.send(CLOSE, b"")
    f = c.expect_close()
    assert f.payload == b""
    assert c.closed_by_server()


def test_7_one_byte_close_payload_closes_1002(nginx, echo):
    c = echo()
    c.send(CLOSE, b"\x03")
    expect_failure(nginx, c, 1002)


def test_7_close_reason_must_be_utf8(nginx, echo):
    c = echo()
    c.send(CLOSE, struct.pack("!H", 1000) + b"\xff")
    expect_failure(nginx, c, 1007)


def test_7_close_reason_of_123_bytes(echo):
    c = echo()
    c.close(1000, "r" * 123)
    assert c.expect_close().close_reason == "r" * 123


def test_7_data_after_close_is_ignored(echo):
    c = echo()
    # one write, so that the server reads it all after the close frame
    c.send_raw(frame_bytes(CLOSE, struct.pack("!H", 1000))
               + frame_bytes(TEXT, b"too late")
               + frame_bytes(PING, b"too late"))
    f = c.recv_frame()
    assert f.opcode == CLOSE
    assert c.closed_by_server()


def test_7_message_then_close_in_one_write(echo):
    c = echo()
    c.send_raw(frame_bytes(TEXT, b"last") + frame_bytes(
        CLOSE, struct.pack("!H", 1000)))
    # the message was published (and echoed if the echo won the race
    # against the close); the close is always answered
    f = c.expect_close()
    assert f.close_code == 1000


# ----------------------------------------------------- 9: big payloads

def test_9_max_message_size_closes_1009(nginx, echo):
    c = echo("/small/")
    c.send_text("k" * 1024)
    assert len(c.recv_data().payload) == 1024
    c.send_text("k" * 1025)
    f = expect_failure(nginx, c, 1009)
    assert "1024" in f.close_reason


def test_9_oversize_fragmented_message_closes_1009(nginx, echo):
    c = echo("/small/")
    c.send(TEXT, b"x" * 600, fin=False)
    c.send(CONT, b"x" * 600)
    expect_failure(nginx, c, 1009)


def test_9_announced_huge_frame_fails_before_the_payload(nginx, echo):
    c = echo("/small/")
    # 2^40 bytes announced, none sent: the verdict comes from the header
    c.send_raw(frame_bytes(BINARY, b"", length_override=1 << 40))
    expect_failure(nginx, c, 1009)


# ------------------------------------------------ 12/13: permessage-deflate

def test_12_negotiation_replies(echo):
    c = echo(extensions="permessage-deflate")
    assert c.headers["sec-websocket-extensions"] == (
        "permessage-deflate; server_no_context_takeover; "
        "server_max_window_bits=10")
    c = echo(extensions="permessage-deflate; client_max_window_bits")
    assert c.headers["sec-websocket-extensions"].endswith(
        "client_max_window_bits=15")
    c = echo(extensions="permessage-deflate; server_max_window_bits=9")
    assert "server_max_window_bits=9" in c.headers["sec-websocket-extensions"]
    c = echo(extensions="permessage-deflate; bogus=1")
    assert "sec-websocket-extensions" not in c.headers
    c = echo(extensions="x-webkit-deflate-frame")
    assert "sec-websocket-extensions" not in c.headers


def test_12_compressed_client_messages_are_inflated(echo):
    c = echo(extensions="permessage-deflate")
    for text in [b"hello", b"", b"a" * 100000, "κόσμε".encode()]:
        c.send(TEXT, deflate_raw(text), rsv=4)
        f = c.recv_data()
        assert f.payload == text
        assert not f.rsv1  # this location does not deflate its messages


def test_12_client_context_takeover(echo):
    c = echo(extensions="permessage-deflate")
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    for i in range(5):
        msg = b"the same words again and again %d" % i
        data = comp.compress(msg) + comp.flush(zlib.Z_SYNC_FLUSH)
        c.send(TEXT, data[:-4], rsv=4)
        assert c.recv_data().payload == msg


def test_13_messages_deflated_at_publish_are_sent_compressed(echo):
    c = echo("/zecho/", extensions="permessage-deflate")
    text = b"compress me " * 100
    c.send_text(text)
    f = c.recv_data()
    assert f.rsv1 and f.payload == text
    # a client without the extension gets the same message plain
    plain = echo("/zecho/", extensions=None)
    plain.send_text("plain")
    f = plain.recv_data()
    assert not f.rsv1 and f.payload == b"plain"


def test_13_meta_frames_put_a_compressed_header_before_the_stored_body(
        nginx, echo):
    # nchan's layout: the ws+meta.nchan header deflated on its own, then the
    # body as deflated once at publish time, the same bytes a plain
    # subscriber gets
    ch = chan()
    meta = WsClient(nginx.port, "/zecho/" + ch, protocols="ws+meta.nchan",
                    extensions="permessage-deflate")
    plain = WsClient(nginx.port, "/zecho/" + ch,
                     extensions="permessage-deflate")
    try:
        for body, ctype in ((b"uplink 42 Mbit/s " * 50, "text/plain"),
                            (bytes(range(256)) * 4, "application/octet-stream"),
                            (b"", "text/plain")):
            r = requests.post(nginx.url("/zecho/" + ch), data=body,
                              headers={"Content-Type": ctype})
            assert r.status_code == 201, r.text
            fm, fp = meta.recv_data(), plain.recv_data()
            assert fm.rsv1 and fp.rsv1
            binary = ctype == "application/octet-stream"
            assert fm.opcode == fp.opcode == (BINARY if binary else TEXT)
            head, got = fm.payload.split(b"\n\n", 1)
            assert got == body == fp.payload
            assert head.startswith(b"id: ")
            assert head.endswith(b"\ncontent-type: " + ctype.encode())
            assert fm.wire.endswith(fp.wire) and len(fm.wire) > len(fp.wire)
    finally:
        meta.shutdown()
        plain.shutdown()


def test_13_smaller_server_window_gets_plain_frames(echo):
    c = echo("/zecho/",
             extensions="permessage-deflate; server_max_window_bits=9")
    c.send_text("x" * 1000)
    f = c.recv_data()
    assert not f.rsv1 and f.payload == b"x" * 1000


def test_13_bad_deflate_data_closes_1007(nginx, echo):
    c = echo(extensions="permessage-deflate")
    c.send(TEXT, b"\xff\xff\xff\xff not deflate", rsv=4)
    f = expect_failure(nginx, c, 1007)
    assert f.close_reason == "Invalid permessage-deflate data"


def test_13_deflated_invalid_utf8_closes_1007(nginx, echo):
    c = echo(extensions="permessage-deflate")
    c.send(TEXT, deflate_raw(b"\xff\xfe"), rsv=4)
    expect_failure(nginx, c, 1007)


def test_13_deflate_bomb_closes_1009(nginx, echo):
    c = echo("/small/", extensions="permessage-deflate")
    c.send(TEXT, deflate_raw(b"a" * 100000), rsv=4)
    expect_failure(nginx, c, 1009)


def test_13_rsv1_without_negotiation_closes_1002(nginx, echo):
    c = echo()
    c.send(TEXT, deflate_raw(b"hello"), rsv=4)
    expect_failure(nginx, c, 1002)


def test_13_rsv1_on_continuation_closes_1002(nginx, echo):
    c = echo(extensions="permessage-deflate")
    c.send(TEXT, b"a", fin=False)
    c.send(CONT, b"b", rsv=4)
    expect_failure(nginx, c, 1002)
