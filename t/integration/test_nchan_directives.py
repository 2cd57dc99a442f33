"""Every directive of the installed nchan, under its pulse_ name, is known
to Pulse: implemented (the aliases do what their directives do, side by
side with nchan), or refused by `nginx -t` with one line naming what
replaces it (docs/migrating-from-nchan.md, "Every nchan directive").

nchan's list is taken from the installed module itself: the nchan_*
strings of its .so that its own `nginx -t` does not call unknown."""

import os
import re
import subprocess

import pytest
import requests

from conftest import module_env

REFUSAL = re.compile(r"\[emerg\] \d+#\d+: (pulse_\w+( \w+)?): (.+) "
                     r"\(docs/migrating-from-nchan\.md\) in ")


def nginx_t(binary, module, body, tmp, env=None):
    conf = os.path.join(tmp, "t.conf")
    with open(conf, "w") as f:
        f.write("load_module %s;\nerror_log /dev/null;\npid %s/t.pid;\n"
                "events {}\nhttp { %s }\n" % (module, tmp, body))
    return subprocess.run([binary, "-t", "-p", tmp, "-c", conf],
                          capture_output=True, text=True, env=env).stderr


@pytest.fixture(scope="module")
def nchan_directives(request, tmp_path_factory):
    binary = request.config.getoption("--nginx")
    nchan = request.config.getoption("--nchan-module")
    tmp = str(tmp_path_factory.mktemp("nchan-list"))
    with open(nchan, "rb") as f:
        names = sorted(set(n.decode() for n in
                           re.findall(rb"\bnchan_[a-z_]+(?=\x00)", f.read())))
    known = [n for n in names
             if "unknown directive" not in nginx_t(binary, nchan, n + " x;",
                                                   tmp)]
    # nchan 1.3.6 has 136; any nchan has far more than its 40-odd core ones
    assert len(known) > 100, known
    return known


def test_no_nchan_directive_is_unknown_to_pulse(request, nchan_directives,
                                               tmp_path):
    binary = request.config.getoption("--nginx")
    module = request.config.getoption("--module")
    implemented, refused = [], []
    for name in nchan_directives:
        pulse = "pulse_" + name[len("nchan_"):]
        out = nginx_t(binary, module, pulse + " x;", str(tmp_path),
                      module_env(request))
        assert "unknown directive" not in out, out
        m = REFUSAL.search(out)
        if m:
            assert m.group(1) == pulse, out
            assert "; " in m.group(3), "names no replacement: " + out
            refused.append(pulse)
        else:
            implemented.append(pulse)
    print("\n%d nchan directives: %d implemented, %d refused"
          % (len(nchan_directives), len(implemented), len(refused)))
    # what Pulse implements is never refused, and the other way round
    for name in ("pulse_channel_id", "pulse_pub_channel_id",
                 "pulse_subscriber_location", "pulse_max_reserved_memory",
                 "pulse_message_max_buffer_length", "pulse_storage_engine"):
        assert name in implemented
    for name in ("pulse_redis_url", "pulse_use_redis", "pulse_benchmark",
                 "pulse_message_temp_path"):
        assert name in refused


@pytest.mark.parametrize("where,body,replacement", [
    ("upstream", "upstream r { pulse_redis_server 127.0.0.1; "
     "server 127.0.0.1:1; }", "redis: {host, port, db}"),
    ("location", "server { location /b { pulse_benchmark; } }",
     "make bench"),
    ("location if", "server { location / { if ($arg_a) { "
     "pulse_redis_pass r; } } }", "/etc/pulse-publisher/publisher.yaml"),
    ("http", "pulse_redis_password secret;", "redis.password"),
    ("http", "pulse_redis_tls on;", "redis.unix"),
    ("location", "server { location / { pulse_redis_command_timeout 5s; } }",
     "remove the line"),
    ("http", "pulse_message_temp_path /tmp;", "client_body_temp_path"),
    ("location", "server { location / { pulse_storage_engine redis; } }",
     "pulse-publisher"),
])
def test_refusal_in_the_context_nchan_uses(request, tmp_path, where, body,
                                           replacement):
    out = nginx_t(request.config.getoption("--nginx"),
                  request.config.getoption("--module"), body, str(tmp_path),
                  module_env(request))
    assert REFUSAL.search(out), out
    assert replacement in out, out
    assert "test failed" in out


def test_storage_engine_memory_is_accepted_and_others_named(request,
                                                           tmp_path):
    binary = request.config.getoption("--nginx")
    module = request.config.getoption("--module")
    ok = nginx_t(binary, module, "server { location / { "
                 "pulse_storage_engine memory; pulse_pubsub; } }",
                 str(tmp_path), module_env(request))
    assert "test is successful" in ok, ok
    bad = nginx_t(binary, module, "pulse_storage_engine disk;",
                  str(tmp_path), module_env(request))
    assert 'invalid value "disk" in "pulse_storage_engine"' in bad, bad


ALIASES = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.+)$ {
        pulse_publisher_location;
        pulse_pub_channel_id $1;
        pulse_message_max_buffer_length 2;
    }
    location ~ ^/sub/(.+)$ {
        pulse_subscriber_location;
        pulse_sub_channel_id $1;
    }
    location ~ ^/both/(.+)$ {
        pulse_pubsub_location;
        pulse_pubsub_channel_id $1;
    }
}
"""


@pytest.fixture(scope="module")
def alias_servers(nginx_factory):
    return {flavor: nginx_factory(ALIASES, flavor=flavor)
            for flavor in ("nchan", "pulse")}


def test_aliases_behave_as_nchan_s(alias_servers):
    seen = {}
    for flavor, n in alias_servers.items():
        out = []
        for i in range(3):
            out.append(requests.post(n.url("/pub/al"), data="m%d" % i)
                       .status_code)
        # the buffer holds 2 (pulse_message_max_buffer_length)
        info = requests.get(n.url("/pub/al"), headers={"Accept": "text/json"})
        out.append(re.sub(r'"last_message_id": "[^"]*"', "", info.text))
        # the oldest stored message is m1: a long-poll from the start
        r = requests.get(n.url("/sub/al"), headers={
            "If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}, timeout=5)
        out.append((r.status_code, r.text))
        # pubsub: POST publishes, GET subscribes, on one location
        out.append(requests.post(n.url("/both/pb"), data="x").status_code)
        r = requests.get(n.url("/both/pb"), headers={
            "If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}, timeout=5)
        out.append((r.status_code, r.text))
        seen[flavor] = out
    assert seen["pulse"] == seen["nchan"]
    assert seen["pulse"][4] == (200, "m1")


def test_max_reserved_memory_sizes_the_zone(nginx_factory):
    n = nginx_factory("""
pulse_max_reserved_memory 16m;
server {
    listen 127.0.0.1:{port};
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
    location = /metrics { pulse_metrics; }
}
""")
    text = requests.get(n.url("/metrics")).text
    size = re.search(r"^pulse_shm_size_bytes (\S+)$", text, re.M).group(1)
    # the zone less nginx's slab header
    assert 15.5 * 2**20 < float(size) <= 16 * 2**20, size
