"""pulse_metrics (docs/metrics.md): the exposition parses with Prometheus'
own parser, and its values are the traffic the test made, summed over both
workers: connections and deliveries by transport, latency histogram counts,
resumes and gaps, auth denials by reason, endings, tenants bounded to N
labels plus `other`."""

import time
import uuid

import jwt as pyjwt
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from clients import sse
from conftest import wait_for
from wsclient import WsClient

SECRET = "a-metrics-test-secret-of-at-least-32-bytes"

NGINX_CONFIG = """
server {
    listen 127.0.0.1:{port} reuseport;
    location ~ ^/pub/(.*)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_message_buffer_length 3;
    }
    location ~ ^/sub/(.*)$ { pulse_subscriber; pulse_channel_id $1; }
    location ~ ^/tsub/(.*)$ {
        pulse_subscriber; pulse_channel_id $1;
        pulse_subscriber_timeout 1;
    }
    location ~ ^/jwt/(.*)$ {
        pulse_pubsub; pulse_channel_id $1;
        pulse_jwt_key {keys}/hs.key;
        pulse_jwt_token arg=token;
        pulse_jwt_tenant_claim tenant;
    }
    location = /metrics { pulse_metrics; }
    location = /metrics1 { pulse_metrics tenants=1; }
}
"""


@pytest.fixture(scope="module")
def nginx(nginx_factory, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys")
    (keys / "hs.key").write_text(SECRET)
    return nginx_factory(NGINX_CONFIG.replace("{keys}", str(keys)))


def scrape(nginx, path="/metrics"):
    r = requests.get(nginx.url(path), timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out = {}
    types = {}
    for fam in text_string_to_metric_families(r.text):
        types[fam.name] = fam.type
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out, types


def value(m, name, **labels):
    return m.get((name, tuple(sorted(labels.items()))), 0)


def token(**claims):
    claims.setdefault("exp", int(time.time()) + 600)
    return pyjwt.encode(claims, SECRET, algorithm="HS256")


def chan():
    return uuid.uuid4().hex


def test_exposition_parses_with_types(nginx):
    m, types = scrape(nginx)
    assert types["pulse_connections"] == "gauge"
    # the parser names a counter family without its _total
    assert types["pulse_deliveries"] == "counter"
    assert types["pulse_delivery_latency_seconds"] == "histogram"
    assert types["pulse_queue_bytes"] == "histogram"
    assert value(m, "pulse_workers") == 2
    assert value(m, "pulse_shm_size_bytes") > 0
    bounds = [k[1][0][1] for k in m
              if k[0] == "pulse_delivery_latency_seconds_bucket"]
    assert bounds[0] == "5e-05" and "10" in bounds and "+Inf" in bounds


def test_values_match_the_traffic_across_workers(nginx):
    before, _ = scrape(nginx)
    c = chan()
    streams = [sse(nginx.url("/sub/" + c)) for _ in range(12)]
    sockets = [WsClient(nginx.port, "/sub/" + c) for _ in range(6)]
    per_worker = nginx.connections_per_worker()
    assert len(per_worker) == 2, per_worker  # both workers hold some
    for i in range(5):
        r = requests.post(nginx.url("/pub/" + c), data="m%d" % i, timeout=5)
        assert r.status_code == 201
    for s in streams:
        s.read_until(lambda b: b.count(b"data: m") >= 5)
    for w in sockets:
        for i in range(5):
            assert w.recv_data().payload == b"m%d" % i
    # a long-poll from the oldest gets the first buffered message at once
    r = requests.get(nginx.url("/sub/" + c), timeout=5,
                     headers={"If-Modified-Since": "Thu, 01 Jan 1970 "
                              "00:00:00 GMT", "If-None-Match": "0"})
    assert r.status_code == 200 and r.text == "m2"

    def settled():
        m, _ = scrape(nginx)
        d = lambda name, **l: value(m, name, **l) - value(before, name, **l)
        return m if (
            d("pulse_deliveries_total", transport="eventsource") == 60
            and d("pulse_deliveries_total", transport="websocket") == 30
            and d("pulse_deliveries_total", transport="longpoll") == 1
            and value(m, "pulse_connections", transport="eventsource")
            == 12
            and value(m, "pulse_connections", transport="websocket") == 6
        ) else None
    m = wait_for(settled, timeout=5)
    d = lambda name, **l: value(m, name, **l) - value(before, name, **l)
    assert d("pulse_messages_published_total") == 5
    # every delivery was timed
    assert d("pulse_delivery_latency_seconds_count") == 91
    assert value(m, 'pulse_delivery_latency_seconds_bucket',
                 le="+Inf") == value(m, "pulse_delivery_latency_seconds_count")
    assert d("pulse_delivered_bytes_total", transport="websocket") == \
        30 * (2 + 2)  # "mN" in an unmasked text frame
    assert d("pulse_delivered_bytes_total", transport="longpoll") == 2
    assert value(m, "pulse_subscribers") >= 18
    assert value(m, "pulse_queue_bytes_count") >= 18
    for s in streams:
        s.close()
    for w in sockets:
        w.sock.close()
    wait_for(lambda: value(scrape(nginx)[0], "pulse_connections",
                           transport="eventsource") == 0
             and value(scrape(nginx)[0], "pulse_connections",
                       transport="websocket") == 0, timeout=5)


def test_resumes_gaps_and_endings(nginx):
    before, _ = scrape(nginx)
    c = chan()
    live = sse(nginx.url("/sub/" + c))
    for i in range(6):
        assert requests.post(nginx.url("/pub/" + c), data="r%d" % i,
                             timeout=5).status_code == 201
    body = live.read_until(lambda b: b.count(b"data: r") >= 6)
    ids = [l[4:].strip().decode() for l in body.split(b"\n")
           if l.startswith(b"id: ")]
    assert len(ids) == 6
    live.close()
    # the buffer holds the last 3: a resume from r4 is exact, one from r0
    # misses r1 and r2 (a gap)
    s = sse(nginx.url("/sub/" + c), headers={"Last-Event-ID": ids[4]})
    assert b"data: r5" in s.read_until(lambda b: b"data: r5" in b)
    s.close()
    s = sse(nginx.url("/sub/" + c), headers={"Last-Event-ID": ids[0]})
    s.read_until(lambda b: b.count(b"data: r") >= 3)
    s.close()
    # a channel deleted ends its subscriber (gone); a timeout ends one
    g = sse(nginx.url("/sub/" + c))
    assert requests.delete(nginx.url("/pub/" + c), timeout=5) \
        .status_code == 200
    g.read_until(lambda b: b"410" in b)
    g.close()
    t = sse(nginx.url("/tsub/" + chan()))
    t.read_until(lambda b: b"408" in b, timeout=5)
    t.close()

    def ended():
        m, _ = scrape(nginx)
        timeouts = value(m, "pulse_subscribers_ended_total",
                         reason="timeout")
        return m if timeouts > value(before, "pulse_subscribers_ended_total",
                                     reason="timeout") else None
    m = wait_for(ended, timeout=5)
    d = lambda name, **l: value(m, name, **l) - value(before, name, **l)
    assert d("pulse_resumes_total") == 2
    assert d("pulse_resume_gaps_total") == 1
    assert d("pulse_subscribers_ended_total", reason="gone") == 1
    assert d("pulse_subscribers_ended_total", reason="timeout") == 1
    assert d("pulse_messages_evicted_total") == 3


def test_auth_denials_by_reason_and_tenants(nginx):
    before, _ = scrape(nginx)
    c = chan()
    url = "/jwt/" + c + "?token="
    assert requests.get(nginx.url("/jwt/" + c), timeout=5).status_code == 401
    assert requests.get(nginx.url(url + "x.y.z"),
                        timeout=5).status_code == 401
    bad = pyjwt.encode({"tenant": "a", "exp": int(time.time()) + 60},
                       "another-secret-of-at-least-32-bytes-long",
                       algorithm="HS256")
    assert requests.get(nginx.url(url + bad), timeout=5).status_code == 401
    expired = token(tenant="a", exp=int(time.time()) - 3600)
    assert requests.get(nginx.url(url + expired),
                        timeout=5).status_code == 401
    # tenants: three subscribed by a, one by b; publishes by a and c
    held = [sse(nginx.url(url + token(tenant="a"))) for _ in range(3)]
    held.append(sse(nginx.url(url + token(tenant="b"))))
    for who in ("a", "a", "c"):
        r = requests.post(nginx.url(url + token(tenant=who)), data="x",
                          timeout=5)
        assert r.status_code in (201, 202)

    # other workers' counts are at most a tick (1 s) old
    want = {"missing": 1, "malformed": 1, "bad_signature": 1, "expired": 1}

    def seen():
        m, _ = scrape(nginx)
        got = {r: value(m, "pulse_auth_denials_total", reason=r)
               - value(before, "pulse_auth_denials_total", reason=r)
               for r in want}
        return m if got == want and value(
            m, "pulse_tenant_subscribers", tenant="a") == 3 else None
    m = wait_for(seen, timeout=5)
    # nothing else was denied
    assert sum(v for k, v in m.items() if k[0] == "pulse_auth_denials_total") \
        - sum(v for k, v in before.items()
              if k[0] == "pulse_auth_denials_total") == 4
    assert value(m, "pulse_tenant_subscribers", tenant="b") == 1
    assert value(m, "pulse_tenant_messages_published_total",
                 tenant="a") == 2
    assert value(m, "pulse_tenant_messages_published_total",
                 tenant="c") == 1
    # one tenant label, the rest folded into "other"
    m1, _ = scrape(nginx, "/metrics1")
    tenants = {dict(k[1])["tenant"] for k in m1
               if k[0] == "pulse_tenant_subscribers"}
    assert tenants == {"a", "other"}
    assert value(m1, "pulse_tenant_subscribers", tenant="other") == 1
    assert value(m1, "pulse_tenant_messages_published_total",
                 tenant="other") == 1
    for s in held:
        s.close()


def test_bad_requests(nginx):
    assert requests.post(nginx.url("/metrics"), data="x",
                         timeout=5).status_code == 405
    m, _ = scrape(nginx)  # still serves
    assert value(m, "pulse_workers") == 2


@pytest.mark.parametrize("arg", ["tenants=", "tenants=x", "tenants=1001",
                                 "users=3"])
def test_bad_directive_is_a_clear_error(nginx_factory, arg):
    n = nginx_factory("server { listen 127.0.0.1:{port}; "
                      "location = /m { pulse_metrics %s; } }" % arg,
                      start=False)
    out = n.test_config()
    assert out.returncode != 0
    assert "pulse_metrics" in out.stderr and "tenants=N" in out.stderr, \
        out.stderr


def test_counters_survive_a_reload(nginx):
    c = chan()
    s = sse(nginx.url("/sub/" + c))
    assert requests.post(nginx.url("/pub/" + c), data="x",
                         timeout=5).status_code == 201
    s.read_until(lambda b: b"data: x" in b)

    def delivered():
        m, _ = scrape(nginx)
        return value(m, "pulse_deliveries_total", transport="eventsource")
    wait_for(lambda: delivered() > 0, timeout=5)
    before = delivered()
    nginx.reload()  # the old workers exit, their slots retire
    s.close()
    m = wait_for(lambda: (lambda m: m if value(m, "pulse_workers") == 2
                          else None)(scrape(nginx)[0]), timeout=10)
    assert value(m, "pulse_deliveries_total", transport="eventsource") \
        >= before
    assert value(m, "pulse_connections", transport="eventsource") == 0
