"""The module loads into Debian's nginx, rejects bad configuration with a
readable message, and keeps its shared zone across reloads."""

import subprocess

import pytest
import requests

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.+)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
    location = /status { pulse_stub_status; }
}
"""


def test_loads_and_serves(nginx):
    r = requests.post(nginx.url("/pub/a"), data="x")
    assert r.status_code == 202
    r = requests.get(nginx.url("/status"))
    assert r.status_code == 200
    assert "total published messages: 1\n" in r.text


def test_loaded_but_unused_costs_nothing(nginx_factory):
    n = nginx_factory("server { listen 127.0.0.1:{port}; "
                      "location / { return 204; } }")
    assert requests.get(n.url("/")).status_code == 204


BAD = [
    ("pulse_publisher foo;", 'invalid value "foo" in "pulse_publisher"'),
    ("pulse_subscriber eventsource carrier-pigeon;",
     'invalid value "carrier-pigeon" in "pulse_subscriber"'),
    ("pulse_subscriber_first_message sideways;",
     'expected oldest, newest or a number from -32 to 32'),
    ("pulse_subscriber_first_message 33;", "from -32 to 32"),
    ("pulse_message_buffer_length lots;", "expected a number or a variable"),
    ("pulse_message_timeout soon;", "expected a time like 30s or 1h"),
    ("pulse_store_messages maybe;", "it must be \"on\" or \"off\""),
    ("pulse_channel_id;", 'invalid number of arguments in "pulse_channel_id"'),
    ("pulse_max_channel_id_length 0;", "must be between 1 and 65536"),
    ("pulse_subscriber_timeout forever;", "invalid value"),
    ("pulse_publisher; pulse_publisher;", "is duplicate"),
    ('pulse_subscriber; pulse_eventsource_ping_event "a\\ndata: x";',
     "Invalid pulse_eventsource_ping_event: it contains a control character "
     "(0x0a)"),
    ('pulse_subscriber; pulse_eventsource_ping_comment "a\\rb";',
     "Invalid pulse_eventsource_ping_comment"),
]


@pytest.mark.parametrize("directive,message", BAD)
def test_nginx_t_rejects_bad_directives(nginx_factory, directive, message):
    n = nginx_factory("server { listen 127.0.0.1:{port}; location /x { %s } }"
                      % directive, start=False)
    r = n.test_config()
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert "nginx.conf:" in r.stderr  # names the file and line


def test_shared_memory_size_limits(nginx_factory):
    n = nginx_factory("pulse_shared_memory_size 512k; server { listen "
                      "127.0.0.1:{port}; location /x { pulse_publisher; } }",
                      start=False)
    r = n.test_config()
    assert r.returncode != 0
    assert "pulse_shared_memory_size must be at least 1m" in r.stderr


def test_example_config_passes_nginx_t(request):
    r = subprocess.run(["make", "-s", "-C", "../..", "nginx-t"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_reload_keeps_channels_and_messages(nginx):
    for i in range(3):
        assert requests.post(nginx.url("/pub/keep"),
                             data="m%d" % i).status_code == 202
    before = requests.get(nginx.url("/pub/keep"),
                          headers={"Accept": "text/json"}).json()
    nginx.reload()
    after = requests.get(nginx.url("/pub/keep"),
                         headers={"Accept": "text/json"}).json()
    assert after["messages"] == 3
    assert after["last_message_id"] == before["last_message_id"]
    # and the new workers still deliver the buffered messages
    r = requests.get(nginx.url("/sub/keep"))
    assert r.text == "m0"
    # a second reload adopts the same zone again
    nginx.reload()
    assert requests.post(nginx.url("/pub/keep"), data="m3").status_code == 202
    info = requests.get(nginx.url("/pub/keep"),
                        headers={"Accept": "text/json"}).json()
    assert info["messages"] == 4
