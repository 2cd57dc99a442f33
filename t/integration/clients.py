"""Small, strict HTTP clients for the tests: raw sockets so that the exact
bytes nginx sends can be asserted, with HTTP/1.1 chunked decoding."""

import socket
import ssl
import time
from urllib.parse import urlsplit


def tls_wrap(sock, hostname="localhost"):
    """A TLS client socket for the tests' self-signed certificates."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(sock, server_hostname=hostname)


class Response:
    def __init__(self, status, reason, headers, raw_headers):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case name -> list of values
        self.raw_headers = raw_headers

    def header(self, name):
        v = self.headers.get(name.lower())
        return v[0] if v else None


class Stream:
    """A streaming GET (EventSource, long-poll): read the response head, then
    the body as it arrives. An https URL is read over TLS; rcvbuf makes a
    small receive window from the start (a slow reader)."""

    def __init__(self, url, headers=None, timeout=10.0, source=None,
                 rcvbuf=None):
        u = urlsplit(url)
        self.sock = socket.socket()
        if source:
            self.sock.bind((source, 0))
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((u.hostname, u.port))
        if u.scheme == "https":
            self.sock = tls_wrap(self.sock)
        path = u.path + ("?" + u.query if u.query else "")
        lines = ["GET %s HTTP/1.1" % path, "Host: %s" % u.netloc]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        self.body = b""
        self.response = None
        self.chunked = False
        self.closed = False
        self.finished = False  # saw the terminating chunk

    def _recv(self):
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise
        if not d:
            self.closed = True
        self.buf += d
        return d

    def head(self):
        while self.response is None:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                raw = self.buf[:i].decode("latin-1")
                self.buf = self.buf[i + 4:]
                first, *rest = raw.split("\r\n")
                _, status, *reason = first.split(" ", 2)
                headers = {}
                for line in rest:
                    k, v = line.split(":", 1)
                    headers.setdefault(k.strip().lower(), []).append(v.strip())
                self.response = Response(int(status), " ".join(reason),
                                         headers, raw)
                self.chunked = (self.response.header("transfer-encoding")
                                == "chunked")
                break
            if not self._recv():
                raise ConnectionError("closed before the response head")
        return self.response

    def _decode(self):
        if not self.chunked:
            self.body += self.buf
            self.buf = b""
            return
        while True:
            i = self.buf.find(b"\r\n")
            if i < 0:
                return
            size = int(self.buf[:i].split(b";")[0], 16)
            if len(self.buf) < i + 2 + size + 2:
                return
            if size == 0:
                self.finished = True
                self.buf = b""
                return
            self.body += self.buf[i + 2:i + 2 + size]
            self.buf = self.buf[i + 2 + size + 2:]

    def read_until(self, pred, timeout=10.0):
        """Reads until pred(body) is true; returns the body."""
        self.head()
        deadline = time.monotonic() + timeout
        self._decode()
        while not pred(self.body):
            if self.closed or self.finished:
                raise ConnectionError("stream ended: %r" % self.body[-300:])
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("body so far: %r" % self.body[-300:])
            self.sock.settimeout(left)
            self._recv()
            self._decode()
        return self.body

    def read_to_end(self, timeout=10.0):
        self.head()
        deadline = time.monotonic() + timeout
        self._decode()
        while not (self.closed or self.finished):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("body so far: %r" % self.body[-300:])
            self.sock.settimeout(left)
            self._recv()
            self._decode()
        return self.body

    def expect_end(self, timeout=10.0):
        """The server ends the stream (closes it or sends the last chunk)
        within timeout; closes our side. Returns the body."""
        try:
            self.read_to_end(timeout)
        except ConnectionError:
            pass
        assert self.closed or self.finished, self.body[-300:]
        self.close()
        return self.body

    def close(self):
        self.sock.close()


def parse_sse(body):
    """EventSource events from a body: list of dicts with id, event, data,
    and comments as {'comment': text}."""
    events = []
    for block in body.decode("utf-8", "replace").split("\n\n"):
        if not block:
            continue
        ev = {}
        data = []
        for line in block.split("\n"):
            if line.startswith(":"):
                ev.setdefault("comment", line[1:])
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line.startswith("id: "):
                ev["id"] = line[4:]
            elif line.startswith("event: "):
                ev["event"] = line[7:]
        if data:
            ev["data"] = "\n".join(data)
        events.append(ev)
    return events


def sse_count(body):
    return body.count(b"\ndata: ") + body.startswith(b"data: ")


def sse(url, headers=None, **kw):
    h = {"Accept": "text/event-stream"}
    h.update(headers or {})
    s = Stream(url, h, **kw)
    s.head()
    return s


def both(servers, fn):
    """Runs fn(nginx) against nchan and Pulse; what they give must be equal.
    Returns Pulse's."""
    out = {flavor: fn(n) for flavor, n in servers.items()}
    assert out["pulse"] == out["nchan"], out
    return out["pulse"]
