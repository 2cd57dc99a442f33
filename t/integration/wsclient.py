"""A raw-socket WebSocket client for conformance tests: it sends whatever
frames a test makes (bad ones included) and reads server frames strictly
(server frames must be unmasked, reserved bits clear unless deflated)."""

import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import time
import zlib

from clients import tls_wrap

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeError(Exception):
    def __init__(self, status, headers, body):
        super().__init__("handshake answered %d: %r" % (status, body))
        self.status = status
        self.headers = headers
        self.body = body


class Frame:
    def __init__(self, fin, rsv1, opcode, payload):
        self.fin, self.rsv1, self.opcode, self.payload = fin, rsv1, opcode, payload

    @property
    def text(self):
        return self.payload.decode("utf-8")

    def json(self):
        return json.loads(self.payload)

    @property
    def close_code(self):
        if len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self):
        return self.payload[2:].decode("utf-8")

    def __repr__(self):
        return "Frame(op=%d fin=%s rsv1=%s %r)" % (
            self.opcode, self.fin, self.rsv1, self.payload[:80])


def frame_bytes(opcode, payload=b"", fin=True, rsv=0, mask=True,
                length_override=None):
    """One client frame; rsv is the 3 reserved bits (0..7, rsv1 = 4)."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length_override is None else length_override
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return head + key + masked


def deflate_raw(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


class WsClient:
    def __init__(self, port, path, protocols=None, extensions=None,
                 headers=None, host="127.0.0.1", timeout=5.0, rcvbuf=None,
                 tls=False):
        if rcvbuf:
            # before connect, so that the window is small from the start
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        else:
            self.sock = socket.create_connection((host, port),
                                                 timeout=timeout)
        self.sock.settimeout(timeout)
        if tls:
            self.sock = tls_wrap(self.sock)
        self.buf = b""
        self.inflater = None
        key = base64.b64encode(os.urandom(16)).decode()
        req = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port,
               "Upgrade: websocket", "Connection: Upgrade",
               "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        if protocols:
            req.append("Sec-WebSocket-Protocol: " + protocols)
        if extensions:
            req.append("Sec-WebSocket-Extensions: " + extensions)
        for k, v in (headers or {}).items():
            req.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(req) + "\r\n\r\n").encode())
        status, self.headers, body = self._read_response()
        if status != 101:
            raise HandshakeError(status, self.headers, body)
        expect = base64.b64encode(
            hashlib.sha1(key.encode() + GUID).digest()).decode()
        assert self.headers["sec-websocket-accept"] == expect
        self.protocol = self.headers.get("sec-websocket-protocol")
        ext = self.headers.get("sec-websocket-extensions", "")
        if ext.startswith("permessage-deflate"):
            self.inflater = zlib.decompressobj(-15)

    def _read_response(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        body = b""
        if status != 101:
            n = int(headers.get("content-length", "0"))
            while len(self.buf) < n:
                self.buf += self.sock.recv(65536)
            body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    # --------------------------------------------------------------- send
    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, opcode, payload=b"", **kw):
        self.sock.sendall(frame_bytes(opcode, payload, **kw))

    def send_text(self, text):
        self.send(TEXT, text)

    def send_json(self, obj):
        self.send(TEXT, json.dumps(obj))

    def close(self, code=1000, reason=""):
        self.send(CLOSE, struct.pack("!H", code) + reason.encode())

    # ------------------------------------------------------------ receive
    def _need(self, n, deadline):
        while len(self.buf) < n:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk

    def recv_frame(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert b1 & 0x80 == 0, "server frames must not be masked"
        n = b1 & 0x7F
        at = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            at = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            at = 10
        self._need(at + n, deadline)
        payload = self.buf[at:at + n]
        self.buf = self.buf[at + n:]
        rsv1 = bool(b0 & 0x40)
        assert b0 & 0x30 == 0, "server set rsv2/rsv3"
        wire = payload
        if rsv1:
            assert self.inflater is not None, "rsv1 without deflate"
            payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
        f = Frame(bool(b0 & 0x80), rsv1, b0 & 0x0F, payload)
        f.wire = wire  # the payload as sent, compressed or not
        return f

    def recv_data(self, timeout=5.0):
        """The next text/binary frame, answering nothing, skipping pings."""
        while True:
            f = self.recv_frame(timeout)
            if f.opcode in (PING, PONG):
                continue
            return f

    def recv_json(self, timeout=5.0):
        f = self.recv_data(timeout)
        assert f.opcode == TEXT, f
        return f.json()

    def expect_close(self, timeout=5.0):
        """Reads until a close frame; returns it (skips data frames)."""
        while True:
            f = self.recv_frame(timeout)
            if f.opcode == CLOSE:
                return f

    def closed_by_server(self, timeout=3.0):
        """True when the server closes the TCP connection within timeout."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except socket.timeout:
            return False
        except (ConnectionResetError, ssl.SSLEOFError):
            return True  # TLS: the TCP connection closed without close_notify
        return False

    def shutdown(self):
        try:
            self.sock.close()
        except OSError:
            pass
