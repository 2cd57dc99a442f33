"""The benchmark's instruments (make bench): the load generator counts every
delivery against Pulse on each transport, and the floor server, whose
figures bound what Pulse can reach, really delivers every message. Small
loads, no timing: a broken instrument fails here rather than skewing a
benchmark."""

import json
import os
import socket
import subprocess
import time

import pytest

from conftest import ROOT, free_port, wait_for

LOADGEN = os.path.join(ROOT, "build", "loadgen")
FLOOR = os.path.join(ROOT, "build", "floor")

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port} reuseport;
    location ~ ^/pub/(.+)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length 200;
    }
    location ~ ^/sub/(.+)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_first_message newest;
    }
}
"""

SUBS, CHANNELS, PER_CHANNEL = 60, 3, 10


def sub_then_pub(sub_args, pub_args):
    """Starts `loadgen sub`, publishes with `loadgen pub` once it is ready;
    both JSON reports."""
    sub = subprocess.Popen([LOADGEN, "sub"] + sub_args,
                           stdout=subprocess.PIPE, text=True)
    try:
        assert sub.stdout.readline().strip() == "ready"
        time.sleep(0.2)  # long-poll subscribers send their first request
        pub = subprocess.run([LOADGEN, "pub"] + pub_args, capture_output=True,
                             text=True, check=True, timeout=20)
        out, _ = sub.communicate(timeout=30)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    return (json.loads(pub.stdout.strip().splitlines()[-1]),
            json.loads(out.strip().splitlines()[-1]))


def run_load(port, transport):
    return sub_then_pub(
        ["--port", str(port), "--subs", str(SUBS), "--channels",
         str(CHANNELS), "--sources", "2", "--expect", str(PER_CHANNEL),
         "--transport", transport, "--seconds", "20"],
        ["--port", str(port), "--channels", str(CHANNELS), "--messages",
         str(CHANNELS * PER_CHANNEL), "--window", "2"])


def check(pub, r):
    assert pub["answered"] == CHANNELS * PER_CHANNEL, pub
    assert r["deliveries"] == SUBS * PER_CHANNEL, r
    assert (r["lost"], r["duplicated"], r["out_of_order"], r["errors"]) == \
        (0, 0, 0, 0), r
    # every delivery gave a latency; the kernel saw the bytes before the
    # load generator read them
    assert 0 <= r["latency_ms"]["p50"] <= r["read_latency_ms"]["p50"], r


@pytest.mark.parametrize("transport", ["sse", "longpoll", "ws", "ws-meta"])
def test_loadgen_counts_every_pulse_delivery(nginx, transport):
    pub, r = run_load(nginx.port, transport)
    if transport == "longpoll":
        # between a response and the next poll nobody waits: 202, buffered
        assert set(pub["status"]) <= {"201", "202"}, pub
    else:
        assert pub["status"] == {"201": CHANNELS * PER_CHANNEL}, pub
    check(pub, r)


@pytest.fixture(scope="module")
def floor():
    port = free_port()
    proc = subprocess.Popen([FLOOR, "--port", str(port), "--workers", "2"])

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False
    wait_for(up, 10, "the floor server")
    yield port, proc
    proc.terminate()
    assert proc.wait(10) == 0


@pytest.mark.parametrize("transport", ["sse", "ws", "ws-meta"])
def test_floor_delivers_every_message_across_its_processes(floor, transport):
    port, proc = floor
    pub, r = run_load(port, transport)
    assert pub["status"] == {"201": CHANNELS * PER_CHANNEL}, pub
    check(pub, r)
    assert proc.poll() is None


def test_floor_refuses_what_it_does_not_serve_and_stays_up(floor):
    port, proc = floor
    with socket.create_connection(("127.0.0.1", port), 2) as s:
        s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 404 ")
    pub, r = run_load(port, "sse")
    check(pub, r)
    assert proc.poll() is None


def test_floor_usage_error():
    r = subprocess.run([FLOOR, "--workers", "2"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2
    assert "usage: floor --port P" in r.stderr


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_loadgen_puts_a_token_per_subscriber(nginx_factory, tmp_path,
                                             transport):
    """The connection-setup benchmark's --tokens: subscriber i sends line i
    (mod the lines); a refused token counts as an error."""
    import jwt as pyjwt
    secret = "a-bench-tools-secret-of-32-bytes-or-more"
    (tmp_path / "hs.key").write_text(secret)
    n = nginx_factory("""
server {
    listen 127.0.0.1:{port};
    location ~ ^/jwt/(.+)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_jwt_key %s/hs.key;
        pulse_jwt_token arg=token;
        pulse_auth_audit all info;
    }
}
""" % tmp_path)
    exp = int(time.time()) + 600
    good = [pyjwt.encode({"sub": "s%d" % i, "exp": exp}, secret,
                         algorithm="HS256") for i in range(3)]
    (tmp_path / "good").write_text("\n".join(good) + "\n")
    (tmp_path / "mixed").write_text(good[0] + "\nnot-a-token\n")

    def run(tokens):
        out = subprocess.run(
            [LOADGEN, "sub", "--port", str(n.port), "--subs", "6",
             "--channels", "2", "--transport", transport, "--path",
             "/jwt/c{c}?token={t}", "--tokens", str(tmp_path / tokens),
             "--seconds", "1"],
            capture_output=True, text=True, timeout=20, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    assert run("good")["errors"] == 0
    assert run("mixed")["errors"] == 3  # subscribers 1, 3 and 5
    # "good": 6 subscribers over 3 tokens; "mixed": s0 for 0, 2 and 4
    log = n.log()
    assert [log.count('sub="s%d"' % i) for i in range(3)] == [5, 2, 2]


def test_loadgen_keys_conflate_and_last_counts_current_subscribers(nginx):
    # the storm benchmark's instruments: --keys sends Pulse-Key, --last
    # counts who ends on each channel's final message; throttled, a
    # subscriber skips seqs but never the last one
    p, r = sub_then_pub(
        ["--port", str(nginx.port), "--subs", "20", "--channels", "2",
         "--path", "/sub/keyed{c}?throttle=200ms", "--last", "49",
         "--seconds", "3"],
        ["--port", str(nginx.port), "--channels", "2", "--messages", "100",
         "--window", "1", "--keys", "5", "--path", "/pub/keyed{c}"])
    assert p["answered"] == 100, p
    assert r["current"] == 20, r
    assert 0 < r["deliveries"] < 20 * 50, r  # conflated, not all
    assert (r["duplicated"], r["out_of_order"], r["errors"]) == (0, 0, 0), r


def test_paced_floor_writes_the_latest_per_key_once_per_interval():
    """floor --throttle (the storm scenario's bound): held per channel, the
    latest message per key, one write per subscriber per interval."""
    port = free_port()
    proc = subprocess.Popen([FLOOR, "--port", str(port), "--workers", "2",
                             "--throttle", "300"])
    try:
        wait_for(lambda: subprocess.run(
            ["ss", "-Htln", "sport", "=", ":%d" % port], capture_output=True,
            text=True).stdout.strip() != "", 10, "the floor server")
        pub, r = sub_then_pub(
            ["--port", str(port), "--subs", str(SUBS), "--channels",
             str(CHANNELS), "--sources", "2", "--last", str(PER_CHANNEL - 1),
             "--transport", "sse", "--seconds", "3"],
            ["--port", str(port), "--channels", str(CHANNELS), "--messages",
             str(CHANNELS * PER_CHANNEL), "--window", "2", "--keys", "2"])
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    assert pub["status"] == {"201": CHANNELS * PER_CHANNEL}, pub
    # every subscriber ends on its channel's last message (key k1's latest)
    assert r["current"] == SUBS, r
    # 10 messages over 2 keys, in one or two intervals: 2 to 4 delivered
    assert SUBS * 2 <= r["deliveries"] <= SUBS * 4, r
    assert (r["duplicated"], r["out_of_order"], r["errors"]) == (0, 0, 0), r
