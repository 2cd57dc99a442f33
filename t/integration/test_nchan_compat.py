"""The same requests against the installed nchan (Debian libnginx-mod-nchan)
and against Pulse, with the same config modulo the directive prefix; what
the clients see must be identical, ids aside (they carry the time)."""

import re

import pytest
import requests

from clients import sse

CONFIG = """
server {
    listen 127.0.0.1:{port};
    location ~ ^/pub/(.*)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
    location ~ ^/poll/(.*)$ {
        pulse_subscriber intervalpoll; pulse_channel_id $1;
    }
    location ~ ^/cors/(.*)$ {
        pulse_pubsub; pulse_channel_id $1;
        pulse_access_control_allow_origin "https://a.example";
    }
    location ~ ^/ping/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_eventsource_ping_interval 1;
    }
}
"""

# Headers whose values differ by server run, not by behaviour.
VOLATILE = {"date", "last-modified", "server", "connection",
            "transfer-encoding", "keep-alive"}
ID_RE = re.compile(rb"\d{9,}:\d+")


@pytest.fixture(scope="module")
def servers(nginx_factory):
    return {flavor: nginx_factory(CONFIG, flavor=flavor)
            for flavor in ("nchan", "pulse")}


def norm(b):
    if isinstance(b, str):
        b = b.encode()
    return ID_RE.sub(b"<ID>", b)


def view(r):
    headers = sorted((k.lower(), norm(v)) for k, v in r.headers.items()
                     if k.lower() not in VOLATILE)
    return r.status_code, headers, norm(r.content)


def both(servers, fn):
    out = {}
    for flavor, n in servers.items():
        out[flavor] = fn(n, flavor)
    assert out["pulse"] == out["nchan"]
    return out["pulse"]


def test_publish_and_info(servers):
    def run(n, flavor):
        res = [view(requests.post(n.url("/pub/c1"), data="hello",
                                  headers={"Content-Type": "text/x-a"}))]
        for accept in ("text/plain", "text/json", "text/xml", "text/yaml",
                       "application/json"):
            res.append(view(requests.get(n.url("/pub/c1"),
                                         headers={"Accept": accept})))
        res.append(view(requests.get(n.url("/pub/missing"))))
        res.append(view(requests.delete(n.url("/pub/missing"))))
        return res
    both(servers, run)


def test_longpoll_response(servers):
    def run(n, flavor):
        requests.post(n.url("/pub/lp"), data="one",
                      headers={"Content-Type": "text/x-b"})
        requests.post(n.url("/pub/lp"), data="two")
        r = requests.get(n.url("/sub/lp"), headers={"Origin": "http://o"})
        r2 = requests.get(n.url("/sub/lp"), headers={
            "If-Modified-Since": r.headers["Last-Modified"],
            "If-None-Match": r.headers["Etag"]})
        return [view(r), view(r2)]
    both(servers, run)


def test_interval_poll_304(servers):
    def run(n, flavor):
        r = requests.get(n.url("/poll/ip"))
        requests.post(n.url("/pub/ip"), data="x")
        r1 = requests.get(n.url("/poll/ip"))
        r2 = requests.get(n.url("/poll/ip"), headers={
            "If-Modified-Since": r1.headers["Last-Modified"],
            "If-None-Match": r1.headers["Etag"]})
        return [view(r), view(r1), view(r2)]
    both(servers, run)


def test_eventsource_stream_and_delete(servers):
    def run(n, flavor):
        requests.post(n.url("/pub/es"), data="a\nb",
                      headers={"X-EventSource-Event": "e1"})
        s = sse(n.url("/sub/es"))
        try:
            s.read_until(lambda b: b"data: b\n\n" in b)
            requests.post(n.url("/pub/es"), data="")
            s.read_until(lambda b: b.count(b"data:") == 3)
            requests.delete(n.url("/pub/es"))
            body = s.read_until(lambda b: b.endswith(b"410 Gone\n\n"))
        finally:
            s.close()
        headers = sorted((k, norm(v[0])) for k, v in s.response.headers.items()
                         if k not in VOLATILE)
        return s.response.status, headers, norm(body)
    both(servers, run)


def test_eventsource_resume(servers):
    def run(n, flavor):
        ids = []
        for i in range(4):
            r = requests.post(n.url("/pub/res"), data="m%d" % i)
            ids.append(r.text.rsplit(": ", 1)[1])
        s = sse(n.url("/sub/res?last_event_id=" + ids[1]))
        try:
            body = s.read_until(lambda b: b"data: m3\n\n" in b)
        finally:
            s.close()
        return norm(body)
    both(servers, run)


def test_ping(servers):
    def run(n, flavor):
        s = sse(n.url("/ping/p"))
        try:
            body = s.read_until(lambda b: b"event: ping" in b, 5)
        finally:
            s.close()
        return body
    both(servers, run)


def test_cors(servers):
    def run(n, flavor):
        return [
            view(requests.post(n.url("/cors/x"), data="1",
                               headers={"Origin": "https://evil.example"})),
            view(requests.post(n.url("/cors/x"), data="1",
                               headers={"Origin": "https://a.example"})),
            view(requests.options(n.url("/cors/x"),
                                  headers={"Origin": "https://a.example"})),
            view(requests.options(n.url("/sub/x"))),
        ]
    both(servers, run)
