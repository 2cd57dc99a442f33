"""Multiplexed subscriptions (several channel ids in one subscription,
docs/protocol.md §2 and §7): one stream for all the channels, nchan's ids with
one time and a tag per channel (the producing channel's in brackets),
resume from such an id, and the end of the stream when any channel is
deleted. Run against the installed nchan and Pulse."""

import re
import threading
import time
import uuid

import pytest
import requests

from clients import Stream, parse_sse, sse
from wsclient import WsClient

CONFIG = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.*)$ { pulse_publisher; pulse_channel_id $1; }
    location = /multi {
        pulse_subscriber; pulse_channel_id $arg_a $arg_b $arg_c;
    }
    location = /split {
        pulse_subscriber; pulse_channel_id $arg_ids;
        pulse_channel_id_split_delimiter ",";
    }
}
"""

TIME_RE = re.compile(r"^\d{9,}:")


@pytest.fixture(scope="module")
def servers(nginx_factory):
    return {flavor: nginx_factory(CONFIG, flavor=flavor)
            for flavor in ("nchan", "pulse")}


class SplitSecond(Exception):
    """The publishes of one run spread over two seconds: the tags of a
    multiplexed id depend on that, so the run is repeated."""


def retrying(fn, n):
    for attempt in range(3):
        try:
            return fn(n)
        except SplitSecond:
            if attempt == 2:
                raise
    return None


def both(servers, fn):
    out = {flavor: retrying(fn, n) for flavor, n in servers.items()}
    assert out["pulse"] == out["nchan"]
    return out["pulse"]


def strip_time(ids):
    """The tags of ids that all share one time; SplitSecond otherwise."""
    times = {i.split(":", 1)[0] for i in ids}
    if len(times) != 1:
        raise SplitSecond()
    return [TIME_RE.sub("", i) for i in ids]


def at_second_start():
    """Waits for the start of a second, so that a few quick publishes share
    their time (the tags of a multiplexed id depend on it)."""
    while time.time() % 1 > 0.05:
        time.sleep(0.01)


def pub(n, ch, body):
    assert requests.post(n.url("/pub/" + ch), data=body).status_code in (
        201, 202)


def test_eventsource_multiplexed_ids(servers):
    def run(n):
        a, b, c = (uuid.uuid4().hex for _ in range(3))
        s = sse(n.url("/multi?a=%s&b=%s&c=%s" % (a, b, c)))
        at_second_start()
        pub(n, a, "a1")
        pub(n, b, "b1")
        pub(n, a, "a2")
        body = s.read_until(lambda x: x.count(b"data: ") == 3)
        s.close()
        evs = [e for e in parse_sse(body) if "data" in e]
        tags = strip_time([e["id"] for e in evs])
        return list(zip(tags, [e["data"] for e in evs]))
    assert both(servers, run) == [("[0],-,-", "a1"), ("0,[0],-", "b1"),
                                  ("[1],0,-", "a2")]


def test_eventsource_multiplexed_resume(servers):
    def run(n):
        ids = ",".join(uuid.uuid4().hex for _ in range(2))
        a, b = ids.split(",")
        s = sse(n.url("/split?ids=" + ids))
        at_second_start()
        for ch, body in ((a, "a1"), (b, "b1"), (a, "a2"), (b, "b2")):
            pub(n, ch, body)
        body = s.read_until(lambda x: x.count(b"data: ") == 4)
        s.close()
        evs = [e for e in parse_sse(body) if "data" in e]
        second = evs[1]["id"]
        r = sse(n.url("/split?ids=" + ids),
                headers={"Last-Event-ID": second})
        again = r.read_until(lambda x: x.count(b"data: ") == 2)
        r.close()
        return [e["data"] for e in parse_sse(again) if "data" in e]
    assert both(servers, run) == ["a2", "b2"]


def test_deleting_one_channel_ends_the_stream(servers):
    def run(n):
        a, b = uuid.uuid4().hex, uuid.uuid4().hex
        s = sse(n.url("/multi?a=%s&b=%s" % (a, b)))
        pub(n, a, "x")
        s.read_until(lambda x: b"data: x" in x)
        requests.delete(n.url("/pub/" + b))
        body = s.read_to_end()
        return body.endswith(b":410: 410 Gone\n\n")
    assert both(servers, run) is True


def test_multipart_multiplexed(servers):
    # nchan's multipart Etag drops the other channels' tags of the same
    # second ("-,[0]"), unlike its EventSource ids ("0,[0]"); resuming from
    # it would repeat the first message. Pulse shows the same id on every
    # transport.
    def run(n):
        a, b = uuid.uuid4().hex, uuid.uuid4().hex
        s = Stream(n.url("/split?ids=%s,%s" % (a, b)),
                   {"Accept": "multipart/mixed"})
        h = s.head()
        bnd = h.header("content-type").split("=", 1)[1].encode()
        at_second_start()
        pub(n, a, "a1")
        pub(n, b, "b1")
        body = s.read_until(lambda x: x.count(b"--" + bnd) == 3)
        s.close()
        if len(set(re.findall(rb"Last-Modified: ([^\r]*)", body))) != 1:
            raise SplitSecond()
        return re.findall(rb"Etag: ([^\r]*)", body)
    out = {flavor: retrying(run, n) for flavor, n in servers.items()}
    assert out["nchan"] == [b"[0],-", b"-,[0]"]
    assert out["pulse"] == [b"[0],-", b"0,[0]"]


def test_websocket_meta_multiplexed(servers):
    def run(n):
        a, b = uuid.uuid4().hex, uuid.uuid4().hex
        c = WsClient(n.port, "/split?ids=%s,%s" % (a, b),
                     protocols="ws+meta.nchan")
        at_second_start()
        pub(n, a, "a1")
        pub(n, b, "b1")
        ids, bodies = [], []
        for _ in range(2):
            p = c.recv_data().payload.decode()
            head, body = p.split("\n\n", 1)
            ids.append(head.split("\n")[0][4:])
            bodies.append(body)
        c.shutdown()
        return list(zip(strip_time(ids), bodies))
    assert both(servers, run) == [("[0],-", "a1"), ("0,[0]", "b1")]


def test_websocket_plain_multiplexed(servers):
    def run(n):
        a, b = uuid.uuid4().hex, uuid.uuid4().hex
        c = WsClient(n.port, "/multi?a=%s&b=%s" % (a, b))
        pub(n, a, "a1")
        pub(n, b, "b1")
        out = [c.recv_data().payload for _ in range(2)]
        c.shutdown()
        return out
    assert both(servers, run) == [b"a1", b"b1"]


def test_websocket_meta_multiplexed_resume_and_delete(servers):
    def run(n):
        a, b = uuid.uuid4().hex, uuid.uuid4().hex
        url = "/split?ids=%s,%s" % (a, b)
        c = WsClient(n.port, url, protocols="ws+meta.nchan")
        at_second_start()
        for ch, body in ((a, "a1"), (b, "b1"), (a, "a2")):
            pub(n, ch, body)
        ids = [c.recv_data().payload.split(b"\n")[0][4:].decode()
               for _ in range(3)]
        strip_time(ids)
        c.shutdown()
        c = WsClient(n.port, url + "&last_event_id=" + ids[1],
                     protocols="ws+meta.nchan")
        again = c.recv_data().payload.split(b"\n\n", 1)[1]
        requests.delete(n.url("/pub/" + b))
        f = c.expect_close()
        return again, f.close_code, f.close_reason
    assert both(servers, run) == (b"a2", 1001, "410 Gone")


def test_longpoll_multiplexed(servers):
    def run(n):
        a, b = uuid.uuid4().hex, uuid.uuid4().hex
        url = n.url("/split?ids=%s,%s" % (a, b))
        at_second_start()
        pub(n, a, "a1")
        pub(n, b, "b1")
        out = []
        headers = {}
        for i in range(3):
            if i == 2:
                # nothing newer: the poll waits for the next message
                threading.Timer(0.3, pub, (n, a, "a2")).start()
            r = requests.get(url, headers=headers, timeout=10)
            out.append((r.status_code, r.text, r.headers.get("Etag")))
            if i == 0:
                out_time = r.headers["Last-Modified"]
            elif r.headers["Last-Modified"] != out_time:
                raise SplitSecond()
            headers = {"If-Modified-Since": r.headers["Last-Modified"],
                       "If-None-Match": r.headers["Etag"]}
        return out
    assert both(servers, run) == [(200, "a1", "[0],-"), (200, "b1", "0,[0]"),
                                  (200, "a2", "[1],0")]
