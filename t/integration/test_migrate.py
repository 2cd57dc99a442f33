"""pulse-migrate round trips (docs/migrating-from-nchan.md, "pulse-migrate"):
real-world nchan configs, with includes, `if` blocks, quoted `;`,
multiplexing, groups, hooks and Redis, are converted; the result passes
`nginx -t` with the module and starts, the generated publisher.yaml passes
`pulse-publisher --check` and runs, and the converted config serves the
same requests as nchan does with the original."""

import os
import re
import signal
import subprocess
import time

import pytest
import redis
import requests

from conftest import free_port, wait_for

TEMPS = "".join("    %s_temp_path {prefix}/%s;\n" % (t, t) for t in
                ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
# The top of both main files, to the start of http {}: what a test
# instance needs (its prefix, workers as the test's user, no daemon).
MAIN = """
load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
{user}
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
worker_processes 2;
events { worker_connections 1024; }
http {
    access_log off;
""" + TEMPS
PULSE_SO = "/usr/lib/nginx/modules/ngx_http_pulse_module.so"

# nchan's own shape: a main file with an http-level include of a glob and a
# server-level include by a relative path.
DASHBOARD = {
    "nginx.conf": MAIN + """
    nchan_max_reserved_memory 32m;   # nchan's old name for the zone size
    include conf.d/*.conf;
}
""",
    "conf.d/dashboard.conf": """
server {
    listen 127.0.0.1:{port};
    add_header X-Note "a; {b} 'c'" always;   # a quoted ; and braces

    location ~ ^/pub/(\\w+)$ {
        nchan_publisher_location;
        nchan_pub_channel_id $1;
        nchan_message_buffer_length 5;
        nchan_message_timeout 10m;
    }
    location ~ ^/sub/(\\w+)$ {
        nchan_subscriber;
        nchan_channel_id $1;
        nchan_subscriber_first_message oldest;
        if ($arg_both) {
            nchan_channel_id $1 $arg_both;
        }
    }
    include conf.d/locations/groups.conf;   # from the main file's directory
}
""",
    "conf.d/locations/groups.conf": """
location ~ ^/grp/(\\w+)$ {
    nchan_pubsub;
    nchan_channel_group "dash";
    nchan_channel_id $1;
    nchan_channel_events_channel_id $1;
    nchan_group_max_messages_disk 0;   # no disk in Pulse: commented out
}
location = /auth { internal; if ($http_x_token != "ok") { return 403; } return 200; }
location ~ ^/secret/(\\w+)$ {
    nchan_pubsub;
    nchan_channel_id $1;
    nchan_authorize_request /auth;
}
""",
}

REDIS = {
    "nginx.conf": MAIN + """
    upstream redis_main {
        nchan_redis_server redis://127.0.0.1:{redis_port}/0;
        nchan_redis_connect_timeout 2s;
    }
    nchan_redis_namespace "t:";
    server {
        listen 127.0.0.1:{port};
        location ~ ^/pub/(\\w+)$ {
            nchan_publisher;
            nchan_channel_id $1;
            nchan_redis_pass redis_main;
            nchan_message_buffer_length 20;
        }
        location ~ ^/sub/(\\w+)$ {
            nchan_subscriber;
            nchan_channel_id $1;
            nchan_redis_pass redis_main;
        }
    }
}
""",
}


INGEST_SOCK = "/run/pulse-publisher/ingest.sock"


def write_tree(root, files, **subs):
    # workers as the user running the tests, as conftest.Nginx does
    subs["user"] = "user root root;" if os.geteuid() == 0 else ""
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        for k, v in subs.items():
            text = text.replace("{%s}" % k, str(v))
        with open(path, "w") as f:
            f.write(text)
    return os.path.join(root, "nginx.conf")


def start(n, conf_path, module=None):
    """Starts the factory's instance `n` on our own files, nginx -t first,
    so that a bad result says why. `module`: load it instead of the
    packaged path pulse-migrate writes."""
    n.conf_path = conf_path
    if module:
        with open(conf_path) as f:
            text = f.read()
        assert PULSE_SO in text, "load_module was not rewritten"
        with open(conf_path, "w") as f:
            f.write(text.replace(PULSE_SO, module))
    t = subprocess.run(n.cmd("-t"), capture_output=True, text=True,
                       env=n.env)
    assert t.returncode == 0, t.stderr
    return n.start()


def migrate(request, src, out):
    return subprocess.run([request.config.getoption("--migrate"), "-o", out,
                           src], capture_output=True, text=True)


def pair(request, nginx_factory, tmp_path, files, **subs):
    """nchan on the original, Pulse on pulse-migrate's output of it."""
    nchan = nginx_factory("", flavor="nchan", start=False)
    start(nchan, write_tree(str(tmp_path / "nchan"), files,
                            prefix=nchan.prefix, port=nchan.port, **subs))
    pulse = nginx_factory("", start=False)
    src = write_tree(str(tmp_path / "orig"), files, prefix=pulse.prefix,
                     port=pulse.port, **subs)
    out = str(tmp_path / "pulse")
    r = migrate(request, src, out)
    assert r.returncode == 0, r.stdout + r.stderr
    start(pulse, os.path.join(out, "nginx.conf"),
          module=request.config.getoption("--module"))
    return nchan, pulse, r, out


ID = re.compile(r"\d{9,}:\d+")


def norm(text):
    return ID.sub("<ID>", text)


def longpoll(n, path, headers=None):
    r = requests.get(n.url(path), headers=dict(
        {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"},
        **(headers or {})), timeout=5)
    return r.status_code, r.text


def test_a_dashboard_config_converts_and_serves_as_nchan(request,
                                                        nginx_factory,
                                                        tmp_path):
    nchan, pulse, r, out = pair(request, nginx_factory, tmp_path, DASHBOARD)
    report = r.stdout
    # every file was carried over, at its place
    for rel in DASHBOARD:
        assert os.path.exists(os.path.join(out, rel)), rel
    groups = open(os.path.join(out, "conf.d/locations/groups.conf")).read()
    assert "nchan_" not in re.sub(r"(?m)^\s*#.*$", "", groups)
    assert "conf.d/locations/groups.conf:6: nchan_channel_events_channel_id" \
        " -> pulse_channel_events_channel_id" in report
    assert "conf.d/locations/groups.conf:7: removed " \
        "nchan_group_max_messages_disk" in report
    assert "conf.d/dashboard.conf:7: nchan_publisher_location -> " \
        "pulse_publisher_location" in report
    assert "differs: EventSource over HTTP/1.1" in report
    assert not os.path.exists(os.path.join(out, "publisher.yaml"))

    def requests_of(n):
        seen = []
        for i in range(7):   # past the buffer of 5
            seen.append(requests.post(n.url("/pub/bw"), data="s%d" % i)
                        .status_code)
        info = requests.get(n.url("/pub/bw"), headers={"Accept": "text/json"})
        seen.append((info.status_code, norm(info.text)))
        seen.append(longpoll(n, "/sub/bw"))
        requests.post(n.url("/pub/other"), data="o")
        seen.append(longpoll(n, "/sub/bw?both=other"))
        seen.append(requests.get(n.url("/sub/bw")).headers.get("X-Note"))
        seen.append(requests.post(n.url("/grp/g1"), data="in group")
                    .status_code)
        seen.append(longpoll(n, "/grp/g1"))
        seen.append(requests.post(n.url("/secret/s"), data="x").status_code)
        seen.append(requests.post(n.url("/secret/s"), data="x",
                                  headers={"X-Token": "ok"}).status_code)
        # (a long-poll here would abort nchan 1.3.6's worker: signal 6)
        return seen

    got = {"nchan": requests_of(nchan), "pulse": requests_of(pulse)}
    assert got["pulse"] == got["nchan"]
    assert got["pulse"][8] == (200, "s2")
    assert got["pulse"][10] == "a; {b} 'c'"
    assert got["pulse"][13] == 403


def test_a_redis_config_becomes_a_sidecar(request, nginx_factory, tmp_path,
                                          redis_server):
    rport = redis_server["port"]
    nchan, pulse, r, out = pair(request, nginx_factory, tmp_path, REDIS,
                                redis_port=rport)
    assert "removed upstream redis_main" in r.stdout
    assert "differs: channels live in each nginx" in r.stdout
    assert "nchan_redis_connect_timeout" in r.stdout
    yaml_path = os.path.join(out, "publisher.yaml")
    with open(yaml_path) as f:
        yaml = f.read()
    assert "port: %d" % rport in yaml and 'patterns: ["t:pulse:*"]' in yaml
    assert 'stream: "t:pulse:ingest"' in yaml
    publisher = request.config.getoption("--publisher")
    check = subprocess.run([publisher, "-c", yaml_path, "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # run it, on a metrics port and an ingest socket of its own (nginx
    # again with that socket)
    sock = str(tmp_path / "ingest.sock")
    with open(yaml_path, "w") as f:
        f.write(yaml.replace("127.0.0.1:9464", "127.0.0.1:%d" % free_port())
                .replace(INGEST_SOCK, sock))
    conf_path = os.path.join(out, "nginx.conf")
    with open(conf_path) as f:
        conf = f.read()
    assert "proxy_pass http://unix:%s:/publish/$1;" % INGEST_SOCK in conf
    pulse.stop()
    with open(conf_path, "w") as f:
        f.write(conf.replace(INGEST_SOCK, sock))
    start(pulse, conf_path)
    side = subprocess.Popen([publisher, "-c", yaml_path],
                            stderr=subprocess.PIPE, text=True)
    try:
        rc = redis.Redis(port=rport)
        wait_for(lambda: rc.execute_command("PUBSUB", "NUMPAT") >= 1, 10,
                 "the sidecar's PSUBSCRIBE")
        # nchan: a POST goes through Redis; Pulse: a PUBLISH to Redis goes
        # through the sidecar. Subscribers see the same.
        deadline = time.monotonic() + 10
        while requests.post(nchan.url("/pub/faults"),
                            data="link down").status_code not in (201, 202):
            assert time.monotonic() < deadline, "nchan never reached Redis"
            time.sleep(0.1)
        assert rc.publish("t:pulse:faults", "link down") == 1
        got = {n: longpoll(s, "/sub/faults") for n, s in
               (("nchan", nchan), ("pulse", pulse))}
        assert got["pulse"] == got["nchan"] == (200, "link down")
        # and the converted location's POST goes through the ingest to
        # every node: here, back to this one, under its stream id
        wait_for(lambda: os.path.exists(sock), 10, "the ingest socket")
        r = requests.post(pulse.url("/pub/jobs"), data="job 7")
        assert r.status_code == 202 and r.text.startswith("stored "), r.text
        assert longpoll(pulse, "/sub/jobs") == (200, "job 7")
    finally:
        side.send_signal(signal.SIGTERM)
        side.communicate(timeout=10)


@pytest.mark.parametrize("text,code,message", [
    ("http {\n  server {\n", 65, "nginx.conf: line 3: unexpected end of file"),
    ('http { add_header X "a;\n', 65, "unexpected end of file in a quoted"),
    ("http { nchan_redis_url rediss://h:6379; }\n", 1,
     "problem: "),
])
def test_bad_input_is_named_and_writes_nothing_wrong(request, tmp_path, text,
                                                     code, message):
    src = tmp_path / "nginx.conf"
    src.write_text(text)
    out = str(tmp_path / "out")
    r = migrate(request, str(src), out)
    assert r.returncode == code, r.stdout + r.stderr
    assert message in r.stdout + r.stderr
    if code == 65:
        assert not os.path.exists(out)


def test_an_absolute_include_with_nchan_directives_is_a_problem(request,
                                                                tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "loc.conf").write_text(
        "location /s { nchan_subscriber; nchan_channel_id s; }\n")
    (elsewhere / "plain.conf").write_text("location /p { return 204; }\n")
    main = tmp_path / "main" / "nginx.conf"
    main.parent.mkdir()
    main.write_text("http { server {\n include %s/loc.conf;\n"
                    " include %s/plain.conf;\n } }\n"
                    % (elsewhere, elsewhere))
    r = migrate(request, str(main), str(tmp_path / "out"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("problem: %s/loc.conf is included by an absolute path and has "
            "nchan directives" % elsewhere) in r.stdout
    assert "plain.conf" not in r.stdout.replace(
        "include %s/plain.conf" % elsewhere, "")
    # the main file is still written, its include unchanged
    out = (tmp_path / "out" / "nginx.conf").read_text()
    assert "include %s/loc.conf;" % elsewhere in out


def test_usage_and_missing_file(request, tmp_path):
    tool = request.config.getoption("--migrate")
    r = subprocess.run([tool], capture_output=True, text=True)
    assert r.returncode == 64 and "usage: pulse-migrate" in r.stderr
    r = subprocess.run([tool, "-o", str(tmp_path / "o"),
                        str(tmp_path / "none.conf")],
                       capture_output=True, text=True)
    assert r.returncode == 74 and "none.conf: No such file" in r.stderr
