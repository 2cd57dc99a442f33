"""Tripwires for the two places where Pulse does what an nginx function
does instead of calling it (each names the function in a comment):

- StreamWriter's send_one (ngx_module/ngx_http_pulse_writer.cpp) is
  nginx 1.22's ngx_unix_send without its debug-log check;
- HeldConnection::detach (ngx_module/ngx_http_pulse_stream.cpp) frees a
  stream's request as ngx_http_set_keepalive frees an idle keepalive one.

nginx-dev ships headers, not the .c files, so these tests pin what the
mirrors rely on: the nginx they were written against, the fields and
functions they use, and the behaviour they produce. Any of them failing
means: re-read those two functions in the new nginx and update the copies.
"""

import os
import re
import subprocess
import time

import requests

from clients import sse

SRC = "/usr/share/nginx/src/src"

CONFIG = """
server {
    listen 127.0.0.1:{port};
    access_log %s/access.log;
    location ~ ^/pub/(.*)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
}
"""


def test_the_nginx_the_mirrors_follow(request):
    out = subprocess.run([request.config.getoption("--nginx"), "-v"],
                         capture_output=True, text=True).stderr
    assert "nginx/1.22.1" in out, (
        "nginx changed (%s): re-check send_one against ngx_unix_send and "
        "HeldConnection::detach against ngx_http_set_keepalive" % out.strip())


def header(path):
    with open(os.path.join(SRC, path)) as f:
        return re.sub(r"\s+", " ", f.read())


def test_the_fields_and_functions_they_use_are_there():
    conn = header("core/ngx_connection.h")
    for field in ("off_t sent;", "unsigned idle:1;", "ngx_buf_t *buffer;",
                  "ngx_pool_t *pool;", "ngx_send_pt send;",
                  "ngx_send_chain_pt send_chain;", "unsigned close:1;"):
        assert field in conn, field
    ev = header("event/ngx_event.h")
    for field in ("unsigned ready:1;", "unsigned error:1;"):
        assert field in ev, field
    req = header("http/ngx_http.h")
    for decl in ("void ngx_http_free_request(ngx_http_request_t *r, "
                 "ngx_int_t rc);",
                 "void ngx_http_close_connection(ngx_connection_t *c);",
                 "void ngx_http_test_reading(ngx_http_request_t *r);"):
        assert decl in req, decl
    unix = header("os/unix/ngx_os.h")
    assert "ssize_t ngx_unix_send(ngx_connection_t *c, u_char *buf, " \
        "size_t size);" in unix


def test_a_detached_stream_is_logged_and_keeps_streaming(nginx_factory,
                                                         tmp_path):
    n = nginx_factory(CONFIG % tmp_path)
    s = sse(n.url("/sub/mirror"))
    log = os.path.join(str(tmp_path), "access.log")
    # ngx_http_free_request ran: the access-log line is written while the
    # stream is open, status 200, the bytes of the header and ": hi"
    deadline = time.monotonic() + 5
    line = ""
    while time.monotonic() < deadline:
        with open(log) as f:
            line = next((ln for ln in f if "/sub/mirror" in ln), "")
        if line:
            break
        time.sleep(0.05)
    assert '" 200 ' in line, line
    # and the connection alone still streams (send_one's bookkeeping)
    for i in range(50):
        assert requests.post(n.url("/pub/mirror"),
                             data="m%d" % i).status_code == 201
    body = s.read_until(lambda b: b"data: m49\n\n" in b)
    assert body.count(b"data: m") == 50
