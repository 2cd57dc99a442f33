"""nchan's channel events (pulse_channel_events_channel_id): what a
location's subscribers and publishes send to channel meta/<id>, side by
side with the installed nchan; and, in Pulse, enqueues and dequeues that
pair up over two workers, a reload and a SIGKILL (nchan's counts drift
there: nchan #216, #692)."""

import os
import signal
import time

import pytest
import requests

from clients import parse_sse, sse
from conftest import channel_info, side_by_side, wait_for
from wsclient import WsClient

CONFIG = """
server {
    listen 127.0.0.1:{port} reuseport;
    location ~ ^/pub/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_channel_events_channel_id $1;
    }
    location ~ ^/sub/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_channel_events_channel_id $1;
    }
    location ~ ^/lp/(.*)$ {
        pulse_subscriber longpoll; pulse_channel_id $1;
        pulse_channel_events_channel_id ev-$1;
        pulse_channel_event_string "$pulse_channel_event:$pulse_channel_id:$arg_who";
    }
    location ~ ^/meta/(.*)$ {
        pulse_subscriber; pulse_channel_group meta; pulse_channel_id $1;
    }
    location ~ ^/metapub/(.*)$ {
        pulse_publisher; pulse_channel_group meta; pulse_channel_id $1;
    }
    location = /status { pulse_stub_status; }
}
"""


@pytest.fixture(scope="module")
def servers(nginx_factory):
    # One worker each: nchan 1.3.6 loses some events sent from another
    # worker than the events channel's (seen as a channel_publish that
    # never arrives); the Pulse-only test below runs two.
    return side_by_side(nginx_factory, CONFIG, workers=1)


def meta_count(n, channel):
    info = channel_info(n, "/metapub/" + channel)
    return int(info["messages"]) if info else 0


def meta_events(n, channel, count):
    s = sse(n.url("/meta/" + channel))
    try:
        body = s.read_until(lambda b: b.count(b"\ndata: ")
                            + b.startswith(b"data: ") >= count)
    finally:
        s.close()
    return [e["data"] for e in parse_sse(body) if "data" in e]


def test_the_events_of_each_kind_match_nchan(servers):
    out = {}
    for flavor, n in servers.items():
        def wait(count):
            wait_for(lambda: meta_count(n, "c1") >= count, 10,
                     "%s: %d events" % (flavor, count))
        assert requests.post(n.url("/pub/c1"), data="m1").status_code == 202
        wait(1)
        # a long-poll answered at once from the buffer is enqueued, then
        # dequeued
        r = requests.get(n.url("/sub/c1"))
        assert r.status_code == 200 and r.text == "m1"
        wait(3)
        s = sse(n.url("/sub/c1"))
        wait(4)
        s.close()
        wait(5)
        ws = WsClient(n.port, "/sub/c1")
        wait(6)
        ws.close()
        wait(7)
        assert requests.delete(n.url("/pub/c1")).status_code == 200
        wait(8)
        out[flavor] = meta_events(n, "c1", 8)
    assert out["pulse"] == out["nchan"] == [
        "channel_publish c1",
        "subscriber_enqueue c1", "subscriber_dequeue c1",
        "subscriber_enqueue c1", "subscriber_dequeue c1",
        "subscriber_enqueue c1", "subscriber_dequeue c1",
        "channel_delete c1",
    ]


def test_the_string_and_the_events_channel_take_variables(servers):
    out = {}
    for flavor, n in servers.items():
        requests.post(n.url("/pub/c2"), data="m1")
        r = requests.get(n.url("/lp/c2?who=ann"))
        assert r.status_code == 200
        wait_for(lambda: meta_count(n, "ev-c2") >= 2, 10, "events")
        out[flavor] = meta_events(n, "ev-c2", 2)
    assert out["pulse"] == out["nchan"] == [
        "subscriber_enqueue:c2:ann", "subscriber_dequeue:c2:ann"]


def test_a_location_without_events_sends_none_and_meta_is_a_channel(servers):
    for flavor, n in servers.items():
        # the events channel is an ordinary one in group meta
        r = requests.post(n.url("/metapub/c3"), data="mine")
        assert r.status_code == 202, flavor
        s = sse(n.url("/meta/c3"))
        s.read_until(lambda b: b"data: mine\n" in b)
        s.close()
        time.sleep(0.3)
        assert meta_count(n, "c3") == 1, flavor


class MetaReader:
    """Reads meta/<channel> live, across the stream's end at a reload (it
    resumes with Last-Event-ID, as a browser would)."""

    def __init__(self, nginx, channel):
        self.nginx = nginx
        self.channel = channel
        self.done = []
        self.last = None
        self.s = None
        self._open()

    def _open(self):
        h = {"Last-Event-ID": self.last} if self.last else {}
        self.s = sse(self.nginx.url("/meta/" + self.channel), h)

    def _events(self, body):
        whole = body[:body.rfind(b"\n\n") + 2] if b"\n\n" in body else b""
        return [e for e in parse_sse(whole) if "data" in e]

    def events(self):
        return self.done + [e["data"] for e in self._events(self.s.body)]

    def wait(self, pred, what, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s.read_until(
                    lambda b: pred(self.done
                                   + [e["data"] for e in self._events(b)]),
                    max(0.1, deadline - time.monotonic()))
                return
            except ConnectionError:
                got = self._events(self.s.body)
                self.done += [e["data"] for e in got]
                if got:
                    self.last = got[-1]["id"]
                self.s.close()
                time.sleep(0.2)
                self._open()
            except TimeoutError:
                raise AssertionError("%s: %r" % (what, self.events()))

    def pid(self):
        """The worker serving this reader."""
        port = self.s.sock.getsockname()[1]
        out = os.popen("ss -Htnp state established sport = :%d dport = :%d"
                       % (self.nginx.port, port)).read()
        return int(out.split("pid=")[1].split(",")[0])

    def close(self):
        self.s.close()


def pairs(events):
    return (events.count("subscriber_enqueue c9"),
            events.count("subscriber_dequeue c9"))


def test_enqueues_and_dequeues_pair_up_over_a_reload_and_a_kill(nginx_factory):
    n = nginx_factory(CONFIG)
    n.allowed.append(r"exited on signal 9")
    n.allowed.append(r'shared memory zone "pulse" was locked by')
    meta = MetaReader(n, "c9")
    try:
        # subscribers on both workers
        subs = []
        while len(subs) < 40 and len(n.connections_per_worker()) < 2 \
                or len(subs) < 10:
            subs.append(sse(n.url("/sub/c9")))
        meta.wait(lambda e: pairs(e) == (len(subs), 0), "enqueues")
        # a reload: the old workers end their streams as they go
        n.reload()
        for s in subs:
            s.expect_end(10)
        meta.wait(lambda e: pairs(e) == (len(subs), len(subs)),
                  "dequeues after the reload")
        total = len(subs)
        # subscribers on both new workers, then one worker is killed
        subs = []
        while len(subs) < 40 and len(n.connections_per_worker()) < 2 \
                or len(subs) < 10:
            subs.append(sse(n.url("/sub/c9")))
        total += len(subs)
        meta.wait(lambda e: pairs(e)[0] == total, "enqueues after reload")
        per_worker = n.connections_per_worker()
        reader = meta.pid()
        victim = next(p for p in per_worker if p != reader)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in n.worker_pids()
                 and len(n.worker_pids()) == 2, 10, "respawn")
        # the dead worker's subscribers are dequeued by the worker that
        # reaps its slot
        killed = [s for s in subs if not alive(s)]
        assert killed, per_worker
        meta.wait(lambda e: pairs(e)[1] == total - len(subs) + len(killed),
                  "dequeues of the killed worker's subscribers")
        for s in subs:
            s.close()
        meta.wait(lambda e: pairs(e) == (total, total), "all dequeued")
        time.sleep(0.5)
        assert pairs(meta.events()) == (total, total)
        status = dict(line.split(": ", 1) for line in
                      requests.get(n.url("/status")).text.splitlines())
        assert status["subscribers"] == "1"  # the reader
    finally:
        meta.close()


def alive(s):
    """False once the server side of a stream is gone."""
    try:
        s.read_to_end(0.5)
    except TimeoutError:
        return True
    except (ConnectionError, OSError):
        return False
    return False
