"""Worker failure and reload: a SIGKILLed worker does not wedge the others
and its replacement serves; a reload with live subscribers ends their
streams cleanly and they resume with nothing lost."""

import os
import signal
import threading
import time

import requests

from clients import parse_sse, sse
from conftest import wait_for

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port} reuseport;
    location ~ ^/pub/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length 1000;
    }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
    location = /status { pulse_stub_status; }
}
"""


def status(nginx):
    text = requests.get(nginx.url("/status")).text
    return dict(line.split(": ", 1) for line in text.splitlines())


def test_sigkill_of_a_worker_while_publishing(nginx):
    # The master logs the kill itself, and, when the victim died holding the
    # zone lock, that it force-unlocked it (the recovery this test is for).
    nginx.allowed.append(r"exited on signal 9")
    nginx.allowed.append(r'shared memory zone "pulse" was locked by')
    subs = [sse(nginx.url("/sub/kill")) for _ in range(20)]
    per_worker = nginx.connections_per_worker()
    assert len(per_worker) == 2, per_worker
    victim = max(per_worker, key=per_worker.get)
    stop = threading.Event()
    sent = []

    def publisher():
        s = requests.Session()
        i = 0
        while not stop.is_set():
            try:
                r = s.post(nginx.url("/pub/kill"), data="k%d" % i, timeout=5)
                if r.status_code in (201, 202):
                    sent.append(i)
            except requests.RequestException:
                s = requests.Session()  # the victim held this connection
            i += 1
    t = threading.Thread(target=publisher)
    t.start()
    try:
        time.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in nginx.worker_pids()
                 and len(nginx.worker_pids()) == 2, 10, "respawn")
        time.sleep(0.3)
    finally:
        stop.set()
        t.join()
    assert sent, "nothing was published"
    # Survivors (on the other worker) got every accepted message in order.
    survivors = 0
    for s in subs:
        try:
            body = s.read_until(
                lambda b: ("data: k%d\n\n" % sent[-1]).encode() in b, 10)
        except ConnectionError:
            continue  # was on the killed worker
        survivors += 1
        datas = [int(e["data"][1:]) for e in parse_sse(body) if "data" in e]
        assert datas == sorted(datas)
        assert set(sent) <= set(datas)
    for s in subs:
        s.close()
    assert survivors > 0
    # The dead worker's subscribers are no longer counted once its slot is
    # reclaimed (by the replacement at start, or within 5 s).
    wait_for(lambda: status(nginx)["subscribers"] == "0", 10,
             "dead worker's subscribers to be reclaimed")
    # Both workers, the new one included, serve publishes and subscribers.
    subs = [sse(nginx.url("/sub/after")) for _ in range(20)]
    try:
        assert len(nginx.connections_per_worker()) == 2
        requests.post(nginx.url("/pub/after"), data="alive")
        for s in subs:
            s.read_until(lambda b: b"data: alive\n\n" in b)
    finally:
        for s in subs:
            s.close()


def test_reload_with_live_subscribers(nginx):
    subs = [sse(nginx.url("/sub/reload")) for _ in range(10)]
    for i in range(3):
        requests.post(nginx.url("/pub/reload"), data="before%d" % i)
    last_ids = []
    for s in subs:
        body = s.read_until(lambda b: b"data: before2\n\n" in b)
        last_ids.append([e for e in parse_sse(body) if "data" in e][-1]["id"])
    nginx.reload()
    # Old workers close their streams (like idle keepalive connections).
    for s in subs:
        s.expect_end(10)
    for i in range(3):
        requests.post(nginx.url("/pub/reload"), data="after%d" % i)
    # Each client resumes from its last id on the new workers: exactly the
    # messages it missed.
    for last in last_ids:
        s = sse(nginx.url("/sub/reload"), {"Last-Event-ID": last})
        body = s.read_until(lambda b: b"data: after2\n\n" in b)
        s.close()
        assert [e["data"] for e in parse_sse(body) if "data" in e] == \
            ["after0", "after1", "after2"]
