"""nchan's subscriber info (pulse_subscriber_info,
pulse_subscriber_info_string): the asker subscribes to a channel of its
own and every subscriber of the location's channel, in every worker,
answers on it; side by side with the installed nchan."""

import re
import threading

import pytest
import requests

from clients import Stream, parse_sse, sse
from conftest import channel_info, side_by_side, wait_for

CONFIG = """
server {
    listen 127.0.0.1:{port} reuseport;
    location ~ ^/pub/(.*)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
    location ~ ^/lp/(.*)$ {
        pulse_subscriber longpoll; pulse_channel_id $1;
        pulse_subscriber_info_string "lp $arg_who $pulse_subscriber_type";
    }
    location ~ ^/info/(.*)$ { pulse_subscriber_info; pulse_channel_id $1; }
}
"""

# what differs by run: client ports and worker pids
VOLATILE = re.compile(r":\d+ | \d+$")


def norm(lines):
    return sorted(VOLATILE.sub(" <N>", line) for line in lines)


@pytest.fixture(scope="module")
def servers(nginx_factory):
    return side_by_side(nginx_factory, CONFIG, workers=1)


def channel_subscribers(n, channel):
    info = channel_info(n, "/pub/" + channel)
    return info["subscribers"] if info else 0


def test_every_subscriber_answers_as_nchan(servers):
    out = {}
    for flavor, n in servers.items():
        es = sse(n.url("/sub/c1"), {"User-Agent": "ua-a"})
        done = []
        t = threading.Thread(target=lambda: done.append(requests.get(
            n.url("/lp/c1?who=bob"), timeout=10).status_code))
        t.start()
        try:
            wait_for(lambda: channel_subscribers(n, "c1") == 2, 5,
                     "two subscribers")
            # a plain GET: the raw stream, one answer per line
            raw = Stream(n.url("/info/c1"), {"User-Agent": "asker"})
            body = raw.read_until(lambda b: b.count(b"\n") >= 2, 5)
            raw.close()
            # EventSource: one message per answer
            ev = sse(n.url("/info/c1"))
            evbody = ev.read_until(lambda b: b.count(b"data: ") >= 2, 5)
            ev.close()
        finally:
            es.close()
            requests.post(n.url("/pub/c1"), data="end")
            t.join()
        out[flavor] = (raw.response.status,
                       norm(body.decode().splitlines()),
                       norm(e["data"] for e in parse_sse(evbody)
                            if "data" in e))
    assert out["pulse"] == out["nchan"]
    assert out["pulse"][1] == ["eventsource 127.0.0.1 <N>ua-a  /sub/c1 <N>",
                               "lp bob longpoll"]


def test_a_channel_without_subscribers_gets_no_answer(servers):
    for flavor, n in servers.items():
        s = Stream(n.url("/info/nobody"))
        assert s.head().status == 200, flavor
        with pytest.raises(TimeoutError):
            s.read_until(lambda b: b.strip() != b"", 0.5)
        s.close()


def test_subscribers_on_both_workers_answer(nginx_factory):
    n = nginx_factory(CONFIG)
    subs = []
    try:
        while len(n.connections_per_worker()) < 2 and len(subs) < 40 \
                or len(subs) < 4:
            subs.append(sse(n.url("/sub/two"),
                            {"User-Agent": "s%d" % len(subs)}))
        wait_for(lambda: channel_subscribers(n, "two") == len(subs), 5,
                 "subscribers")
        ev = sse(n.url("/info/two"))
        body = ev.read_until(lambda b: b.count(b"data: ") >= len(subs), 10)
        ev.close()
        agents = sorted(e["data"].split()[2] for e in parse_sse(body)
                        if "data" in e)
        assert agents == sorted("s%d" % i for i in range(len(subs)))
        pids = {e["data"].split()[-1] for e in parse_sse(body)
                if "data" in e}
        assert len(pids) == 2  # both workers answered
    finally:
        for s in subs:
            s.close()
