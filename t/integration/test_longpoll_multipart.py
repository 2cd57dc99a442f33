"""pulse_longpoll_multipart_response on|raw: a long-poll answers with every
buffered message after its id in one response, byte for byte nchan's
(compared with the installed nchan; boundaries and times aside). An
interval-poll answers one message: nchan answers it 304 Not Modified
whatever is buffered, which Pulse does not copy (docs/directives.md)."""

import re
import threading
import time
import uuid

import pytest
import requests

CONF = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(\\w+)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/mp/(\\w+)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_longpoll_multipart_response on;
    }
    location ~ ^/mpm/(\\w+)/(\\w+)$ {
        pulse_subscriber; pulse_channel_id $1 $2;
        pulse_longpoll_multipart_response on;
    }
    location ~ ^/raw/(\\w+)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_longpoll_multipart_response raw;
        pulse_subscriber_http_raw_stream_separator "|\\n";
    }
    location ~ ^/rawempty/(\\w+)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_longpoll_multipart_response raw;
        pulse_subscriber_http_raw_stream_separator "";
    }
    location ~ ^/off/(\\w+)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_longpoll_multipart_response off;
    }
    location ~ ^/ip/(\\w+)$ {
        pulse_subscriber intervalpoll; pulse_channel_id $1;
        pulse_longpoll_multipart_response on;
    }
}
"""

EPOCH = {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}
BOUNDARY = re.compile(r"boundary=([./0-9A-Za-z]{32})$")


@pytest.fixture(scope="module")
def servers(nginx_factory):
    return {f: nginx_factory(CONF, flavor=f) for f in ("nchan", "pulse")}


def view(r):
    """Status, the headers that matter and the body, the boundary named B
    and dates left out. That the Etag is the last message's is
    t/unit/lib/http_stream_test.cpp's (Poll, Multipart...)."""
    body = r.content
    ct = r.headers.get("Content-Type")
    if ct and ct.startswith("multipart/mixed"):
        b = BOUNDARY.search(ct)
        assert b, ct
        body = body.replace(b.group(1).encode(), b"B")
        ct = ct.replace(b.group(1), "B")
    # the tags depend on which messages shared a second: their shape only
    etag = r.headers.get("Etag")
    return (r.status_code, ct, etag and re.sub(r"\d+", "N", etag),
            "Last-Modified" in r.headers, r.headers.get("Content-Length"),
            body)


def both(servers, fn):
    out = {f: fn(n) for f, n in servers.items()}
    assert out["pulse"] == out["nchan"], out
    return out["pulse"]


def fill(n, ch):
    for data, ct in (("one", "text/plain"), ("", None), ("three", None)):
        h = {"Content-Type": ct} if ct else {}
        requests.post(n.url("/pub/" + ch), data=data, headers=h)


def test_multipart_answers_every_buffered_message(servers):
    def run(n):
        ch = uuid.uuid4().hex
        fill(n, ch)
        return view(requests.get(n.url("/mp/" + ch), headers=EPOCH))
    got = both(servers, run)
    assert got[1] == "multipart/mixed; boundary=B"
    assert got[2] == "N"
    assert got[5] == (b"--B\r\nContent-Type: text/plain\r\n\r\none\r\n"
                      b"--B\r\n\r\n\r\n"
                      b"--B\r\n\r\nthree\r\n--B--\r\n")


def test_each_response_has_a_boundary_of_its_own(servers):
    n = servers["pulse"]
    ch = uuid.uuid4().hex
    fill(n, ch)
    a = requests.get(n.url("/mp/" + ch), headers=EPOCH)
    b = requests.get(n.url("/mp/" + ch), headers=EPOCH)
    assert BOUNDARY.search(a.headers["Content-Type"]).group(1) != \
        BOUNDARY.search(b.headers["Content-Type"]).group(1)


def test_raw_joins_bodies_with_the_separator(servers):
    def run(n):
        ch = uuid.uuid4().hex
        fill(n, ch)
        return view(requests.get(n.url("/raw/" + ch), headers=EPOCH))
    got = both(servers, run)
    assert got[1] is None and got[5] == b"one|\n|\nthree|\n"


def test_raw_with_empty_bodies_and_no_separator_is_an_empty_200(servers):
    """Pulse only: nchan 1.3.6 logs "zero size buf in output" and drops the
    connection here."""
    n = servers["pulse"]
    ch = uuid.uuid4().hex
    requests.post(n.url("/pub/" + ch), data="")
    requests.post(n.url("/pub/" + ch), data="")
    got = view(requests.get(n.url("/rawempty/" + ch), headers=EPOCH))
    assert (got[0], got[4], got[5]) == (200, "0", b"")
    # and the connection still serves
    assert requests.get(n.url("/rawempty/" + ch), headers=EPOCH).status_code \
        == 200


def test_multiplexed_multipart_and_its_etag(servers):
    def run(n):
        a, b = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
        # all three in one second: across a second boundary the id of a
        # multiplexed answer is written differently (Pulse: `-` for a
        # channel whose tag belongs to another second; nchan: the tag)
        time.sleep(1.0 - time.time() % 1.0)
        requests.post(n.url("/pub/" + a), data="a0")
        time.sleep(0.01)
        requests.post(n.url("/pub/" + b), data="b0")
        requests.post(n.url("/pub/" + a), data="a1")
        return view(requests.get(n.url("/mpm/%s/%s" % (a, b)),
                                 headers=EPOCH))
    got = both(servers, run)
    assert got[5].count(b"--B\r\n") == 3


def test_one_message_and_a_resume_are_plain_answers(servers):
    def run(n):
        ch = uuid.uuid4().hex
        requests.post(n.url("/pub/" + ch), data="solo")
        first = requests.get(n.url("/mp/" + ch), headers=EPOCH)
        requests.post(n.url("/pub/" + ch), data="next")
        then = requests.get(n.url("/mp/" + ch), headers={
            "If-Modified-Since": first.headers["Last-Modified"],
            "If-None-Match": first.headers["Etag"]})
        off = requests.get(n.url("/off/" + ch), headers=EPOCH)
        return view(first), view(then), view(off)
    got = both(servers, run)
    assert [g[5] for g in got] == [b"solo", b"next", b"solo"]


def test_a_waiting_multipart_poll_gets_the_next_message(servers):
    def run(n):
        ch = uuid.uuid4().hex
        requests.post(n.url("/pub/" + ch), data="old")
        last = requests.get(n.url("/mp/" + ch), headers=EPOCH)
        out = {}

        def poll():
            out["r"] = requests.get(n.url("/mp/" + ch), timeout=10, headers={
                "If-Modified-Since": last.headers["Last-Modified"],
                "If-None-Match": last.headers["Etag"]})
        t = threading.Thread(target=poll)
        t.start()
        deadline = time.monotonic() + 5
        while "active subscribers: 1" not in requests.get(
                n.url("/pub/" + ch)).text:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        requests.post(n.url("/pub/" + ch), data="w1")
        t.join(10)
        return view(out["r"])
    got = both(servers, run)
    assert got[5] == b"w1"


def test_interval_poll_answers_one_message_where_nchan_says_304(servers):
    got = {}
    for f, n in servers.items():
        ch = uuid.uuid4().hex
        fill(n, ch)
        got[f] = requests.get(n.url("/ip/" + ch), headers=EPOCH)
    assert got["nchan"].status_code == 304
    assert got["pulse"].status_code == 200
    assert got["pulse"].content == b"one"
