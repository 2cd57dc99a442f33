"""The other HTTP streaming subscribers (docs/protocol.md §7): multipart/mixed,
chunked and http-raw-stream, each against the installed nchan and Pulse
with the same config: the same headers and the same bytes, boundaries,
dates and ids aside."""

import re
import time
import uuid

import pytest
import requests

from clients import Stream, both

CONFIG = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.*)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
    location ~ ^/compound/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_compound_etag_message_id on;
    }
    location ~ ^/raw/(.*)$ {
        pulse_subscriber http-raw-stream; pulse_channel_id $1;
    }
    location ~ ^/rawsep/(.*)$ {
        pulse_subscriber http-raw-stream; pulse_channel_id $1;
        pulse_subscriber_http_raw_stream_separator "--";
    }
    location ~ ^/timeout/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_timeout 1s;
    }
}
"""

VOLATILE = {"date", "server", "connection", "transfer-encoding"}
ID_RE = re.compile(rb"\d{9,}:\d+")
DATE_RE = re.compile(rb"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT")


@pytest.fixture(scope="module")
def servers(nginx_factory):
    return {flavor: nginx_factory(CONFIG, flavor=flavor)
            for flavor in ("nchan", "pulse")}


def norm(body, boundary=None):
    if boundary:
        body = body.replace(boundary, b"<B>")
    body = DATE_RE.sub(b"<DATE>", body)
    return ID_RE.sub(b"<ID>", body)


def headers_of(resp):
    return sorted((k, v) for k, vs in resp.headers.items() for v in vs
                  if k not in VOLATILE and k != "content-type")


def pub(n, ch, body, ctype=None):
    h = {"Content-Type": ctype} if ctype else {}
    r = requests.post(n.url("/pub/" + ch), data=body, headers=h)
    assert r.status_code in (201, 202)


def test_multipart_stream(servers):
    def run(n):
        ch = uuid.uuid4().hex
        s = Stream(n.url("/sub/" + ch), {"Accept": "multipart/mixed"})
        h = s.head()
        ctype = h.header("content-type")
        m = re.match(r"multipart/mixed; boundary=([./0-9A-Za-z]{32})$", ctype)
        assert m, ctype
        b = m.group(1).encode()
        s.read_until(lambda body: body.startswith(b"--" + b))
        pub(n, ch, "one", "text/plain")
        s.read_until(lambda body: body.count(b"--" + b) == 2)
        pub(n, ch, "two")
        s.read_until(lambda body: body.count(b"--" + b) == 3)
        requests.delete(n.url("/pub/" + ch))
        body = s.read_to_end()
        tags = re.findall(rb"Etag: (\d+)", body)
        return (h.status, headers_of(h),
                re.sub(rb"Etag: \d+", b"Etag: <TAG>", norm(body, b)),
                len(tags) == 2 and int(tags[1]) in (0, int(tags[0]) + 1))
    status, headers, body, tags_ok = both(servers, run)
    assert status == 200 and tags_ok
    assert body == (b"--<B>\r\nLast-Modified: <DATE>\r\nEtag: <TAG>\r\n"
                    b"Content-Type: text/plain\r\n\r\none\r\n--<B>"
                    b"\r\nLast-Modified: <DATE>\r\nEtag: <TAG>\r\n\r\ntwo"
                    b"\r\n--<B>--\r\n")


def test_multipart_compound_etag_and_resume(servers):
    def run(n):
        ch = uuid.uuid4().hex
        pub(n, ch, "a")
        pub(n, ch, "b")
        s = Stream(n.url("/compound/" + ch + "?last_event_id=0"),
                   {"Accept": "multipart/mixed"})
        h = s.head()
        b = h.header("content-type").split("=", 1)[1].encode()
        body = s.read_until(lambda body: body.count(b"--" + b) == 3)
        s.close()
        return norm(body, b)
    assert both(servers, run) == (
        b"--<B>\r\nEtag: <ID>\r\n\r\na\r\n--<B>\r\nEtag: <ID>\r\n\r\nb\r\n--<B>")


def test_chunked_stream(servers):
    def run(n):
        ch = uuid.uuid4().hex
        s = Stream(n.url("/sub/" + ch), {"TE": "chunked"})
        h = s.head()
        pub(n, ch, "one")
        pub(n, ch, "")  # skipped: an empty chunk would end the response
        pub(n, ch, "three")
        s.read_until(lambda body: body == b"onethree")
        requests.delete(n.url("/pub/" + ch))
        body = s.read_to_end()
        return (h.status, headers_of(h), h.header("content-type"),
                h.header("transfer-encoding"), body, s.finished)
    out = both(servers, run)
    assert out[3:] == ("chunked", b"onethree", True)


def test_chunked_stream_one_chunk_per_message(servers):
    n = servers["pulse"]
    ch = uuid.uuid4().hex
    s = Stream(n.url("/sub/" + ch), {"TE": "chunked"})
    s.head()
    pub(n, ch, "hello")
    deadline = time.monotonic() + 5
    while b"hello" not in s.buf and time.monotonic() < deadline:
        s._recv()
    assert s.buf == b"5\r\nhello\r\n"


@pytest.mark.parametrize("te,chunked", [
    ("chunked;q=0.5", True), ("gzip, Chunked ; q=1", True),
    ("chunked;q=0", False), ("chunked;q=0.000", False), ("trailers", False)])
def test_te_q_values_pick_the_chunked_transport(servers, te, chunked):
    """A TE element `chunked` with a q above zero is the chunked
    transport (docs/protocol.md §3); q=0 and other codings are long-poll.
    'chunked;q=0.5' used to be taken for q=0."""
    n = servers["pulse"]
    ch = uuid.uuid4().hex
    pub(n, ch, "x")
    s = Stream(n.url("/sub/" + ch), {"TE": te})
    h = s.head()
    if chunked:
        assert h.header("transfer-encoding") == "chunked"
        assert h.header("content-length") is None
    else:  # a long-poll answered with the buffered message
        assert h.header("content-length") == "1"
    s.close()


def test_raw_stream(servers):
    def run(n):
        out = []
        for loc in ("/raw/", "/rawsep/"):
            ch = uuid.uuid4().hex
            s = Stream(n.url(loc + ch))
            h = s.head()
            pub(n, ch, "one")
            pub(n, ch, "two")
            s.read_until(lambda body: body.count(b"two") == 1
                         and not body.endswith(b"two"))
            requests.delete(n.url("/pub/" + ch))
            body = s.read_to_end()
            out.append((h.status, headers_of(h), h.header("content-type"),
                        body))
        return out
    out = both(servers, run)
    assert out[0][3] == b"one\ntwo\n"
    assert out[1][3] == b"one--\ntwo--\n"


def test_timeouts_end_the_streams(servers):
    def run(n):
        out = []
        for accept in ({"Accept": "multipart/mixed"}, {"TE": "chunked"}):
            s = Stream(n.url("/timeout/" + uuid.uuid4().hex), accept)
            h = s.head()
            b = (h.header("content-type") or "").partition("boundary=")[2]
            out.append(norm(s.read_to_end(timeout=5), b.encode() or None))
        return out
    assert both(servers, run) == [b"--<B>--\r\n", b""]
