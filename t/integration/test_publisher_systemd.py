"""What the sidecar does for systemd (docs/install.md): Type=notify readiness,
reload and stopping over NOTIFY_SOCKET; journald lines (syslog priority, no
timestamp of its own) exactly when stderr is the stream JOURNAL_STREAM names;
one version, from debian/changelog, in --version and in the module's stub
status."""

import os
import re
import signal
import socket
import subprocess
import time

import redis
import requests

from clients import sse
from conftest import ROOT, publisher_lines, wait_for

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.+)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
    location = /status { pulse_stub_status; }
}
"""


def changelog_version():
    with open(os.path.join(ROOT, "debian", "changelog")) as f:
        return re.match(r"^\S+ \(([^)]+)\)", f.readline()).group(1)


def write_config(tmp_path, nginx, redis_port):
    path = str(tmp_path / "publisher.yaml")
    with open(path, "w") as f:
        f.write("""
nginx: {host: 127.0.0.1, port: %d, publish_path: "/pub/{channel}"}
redis: {host: 127.0.0.1, port: %d}
sources:
  - {name: direct, type: pubsub, channels: [faults]}
""" % (nginx.port, redis_port))
    return path


def subscribed(r):
    return r.pubsub_numsub("faults")[0][1] >= 1


def test_readiness_reload_and_stop_are_notified(request, nginx, redis_server,
                                                tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(sock_path)
    notify.settimeout(10)
    path = write_config(tmp_path, nginx, redis_server["port"])
    env = dict(os.environ, NOTIFY_SOCKET=sock_path)
    pub = subprocess.Popen([request.config.getoption("--publisher"), "-c",
                            path], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert notify.recv(4096) == b"READY=1"
        r = redis.Redis(port=redis_server["port"])
        wait_for(lambda: subscribed(r), 10, "publisher to subscribe")
        s = sse(nginx.url("/sub/faults"))
        r.publish("faults", "after ready")
        s.read_until(lambda b: b"data: after ready\n\n" in b)

        pub.send_signal(signal.SIGHUP)
        assert notify.recv(4096) == b"RELOADING=1"
        assert notify.recv(4096) == b"READY=1"
        # the reload rebuilt the subscription and delivery goes on. Until
        # the new connection has subscribed, a PUBLISH may reach only the
        # old one, which is closing (Pub/Sub is at-most-once): publish
        # until one arrives.
        deadline = time.monotonic() + 10
        tries = 0
        while True:
            tries += 1
            r.publish("faults", "after reload")
            try:
                s.read_until(lambda b: b"data: after reload\n\n" in b,
                             timeout=0.5)
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "no delivery after reload"
        s.close()

        pub.send_signal(signal.SIGTERM)
        assert notify.recv(4096) == b"STOPPING=1"
        _, err = pub.communicate(timeout=10)
    finally:
        if pub.poll() is None:
            pub.kill()
            pub.communicate()
        notify.close()
    assert pub.returncode == 0
    lines = publisher_lines(err)
    assert any(l.startswith("publisher: config reloaded from ")
               for l in lines), lines
    # one before the reload; after it, at least the one that arrived and at
    # most every try (a try in the gap may be dropped or come late)
    final = [l for l in lines if l.startswith("publisher: stopping: ")]
    assert len(final) == 1, lines
    m = re.match(r"publisher: stopping: (\d+) published, (\d+) dropped$",
                 final[0])
    assert m, final
    published, dropped = int(m.group(1)), int(m.group(2))
    assert 2 <= published and published + dropped <= 1 + tries, (final, tries)


def run_to_stop(request, tmp_path, nginx, redis_server, journal_stream_of):
    """Runs the sidecar with stderr in a file and JOURNAL_STREAM naming
    `journal_stream_of` (a path), stops it, and returns its stderr."""
    path = write_config(tmp_path, nginx, redis_server["port"])
    err_path = tmp_path / "stderr"
    with open(err_path, "w") as err:
        target = journal_stream_of or str(err_path)
        st = os.stat(target)
        env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        pub = subprocess.Popen([request.config.getoption("--publisher"),
                                "-c", path], env=env, stderr=err)
        r = redis.Redis(port=redis_server["port"])
        wait_for(lambda: subscribed(r), 10, "publisher to subscribe")
        pub.send_signal(signal.SIGTERM)
        assert pub.wait(10) == 0
    return err_path.read_text()


def test_under_journald_lines_carry_priority_and_no_timestamp(
        request, nginx, redis_server, tmp_path):
    err = run_to_stop(request, tmp_path, nginx, redis_server, None)
    lines = err.splitlines()
    assert lines, err
    for line in lines:
        assert re.fullmatch(r"<[346]>\S.*", line), line
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", line), line
    assert "<6>stopping: 0 published, 0 dropped" in lines, lines


def test_journal_stream_of_another_file_keeps_timestamps(
        request, nginx, redis_server, tmp_path):
    # a child of a service whose stderr was redirected: the variable is
    # inherited but stderr is no longer the journal's stream
    other = tmp_path / "other"
    other.write_text("")
    err = run_to_stop(request, tmp_path, nginx, redis_server, str(other))
    assert "publisher: stopping: 0 published, 0 dropped" in \
        publisher_lines(err), err


def test_one_version_everywhere(request, nginx):
    version = changelog_version()
    out = subprocess.run([request.config.getoption("--publisher"),
                          "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out == "pulse-publisher %s\n" % version
    status = requests.get(nginx.url("/status")).text
    assert "pulse version: %s\n" % version in status, status
