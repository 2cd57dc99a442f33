"""Per-tenant limits (docs/auth.md, Limits): subscribers per tenant across
both workers and every transport, and the publish rate per tenant (a token
bucket in shared memory: 429 with Retry-After, a pulse.v1 error frame,
close 1013 on a plain WebSocket publisher). Each refusal leaves the worker
serving the next client and the other tenant untouched."""

import threading
import time
import uuid

import jwt as pyjwt
import pytest
import requests

from clients import sse
from conftest import wait_for
from wsclient import HandshakeError, WsClient

SECRET = "a-tenant-limits-secret-of-32-bytes-or-more"

CONFIG = """
server {
    listen 127.0.0.1:{port} reuseport;
    pulse_jwt_key {keys}/hs.key;
    pulse_jwt_token arg=token;
    pulse_jwt_tenant_claim tenant;
    pulse_max_tenant_subscribers 3;
    pulse_auth_audit denials info;

    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
    location = /v1 { pulse_pubsub; pulse_tenant_publish_rate 1r/m burst=2; }
    location = /v1msg {
        pulse_jwt_token arg=token message=2s;
        pulse_pubsub;
    }
    location ~ ^/pub/(.+)$ {
        pulse_publisher; pulse_channel_id $1;
        pulse_tenant_publish_rate 1r/s burst=3;
    }
    location ~ ^/wspub/(.+)$ {
        pulse_publisher websocket; pulse_channel_id $1;
        pulse_tenant_publish_rate 1r/m burst=1;
    }
    location ~ ^/internal/([\\w.-]+)/(.+)$ {
        pulse_jwt_key off;
        pulse_publisher; pulse_channel_group $1; pulse_channel_id $2;
    }
}
"""


@pytest.fixture(scope="module")
def ngx(nginx_factory, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys")
    (keys / "hs.key").write_text(SECRET)
    return nginx_factory(CONFIG.replace("{keys}", str(keys)))


def token(tenant):
    return pyjwt.encode({"sub": "u", "tenant": tenant,
                         "exp": int(time.time()) + 600}, SECRET,
                        algorithm="HS256")


def chan():
    return uuid.uuid4().hex


def sse_status(ngx, path):
    """The status of an EventSource request; the stream is closed."""
    with requests.get(ngx.url(path), headers={"Accept": "text/event-stream"},
                      stream=True, timeout=5) as r:
        return r.status_code


def still_serves(ngx, tenant="other"):
    c = chan()
    requests.post(ngx.url("/internal/%s/%s" % (tenant, c)), data="ok")
    r = requests.get(ngx.url("/sub/%s?token=%s" % (c, token(tenant))),
                     timeout=5)
    assert r.status_code == 200 and r.text == "ok"


def test_subscribers_per_tenant_on_every_transport(ngx):
    t = token("acme")
    c = chan()
    held = [sse(ngx.url("/sub/%s?token=%s" % (c, t))) for _ in range(2)]
    ws = WsClient(ngx.port, "/sub/%s?token=%s" % (c, t))
    # the fourth, on any transport and either worker, is refused
    for _ in range(4):
        r = requests.get(ngx.url("/sub/%s?token=%s" % (c, t)),
                         headers={"Accept": "text/event-stream"}, timeout=5)
        assert r.status_code == 403
        assert "pulse_max_tenant_subscribers 3" in r.text
    with pytest.raises(HandshakeError) as e:
        WsClient(ngx.port, "/sub/%s?token=%s" % (chan(), t))
    assert e.value.status == 403
    r = requests.get(ngx.url("/sub/%s?token=%s" % (c, t)), timeout=5)
    assert r.status_code == 403  # a long-poll too
    # another tenant is not held up
    other = sse(ngx.url("/sub/%s?token=%s" % (chan(), token("globex"))))
    assert other.response.status == 200
    # one goes, one more may come
    ws.sock.close()
    wait_for(lambda: sse_status(ngx, "/sub/%s?token=%s" % (chan(), t))
             == 200, what="a freed seat")
    for s in held + [other]:
        s.close()
    assert 'reason="tenant subscriber limit"' in ngx.log()
    still_serves(ngx)


def test_a_waiting_long_poll_holds_a_seat(ngx):
    t = token("polly")
    chans = [chan() for _ in range(3)]
    results = {}

    def poll(c):
        results[c] = requests.get(ngx.url("/sub/%s?token=%s" % (c, t)),
                                  timeout=10)
    threads = [threading.Thread(target=poll, args=(c,)) for c in chans]
    for th in threads:
        th.start()
    def waiting(c):
        r = requests.get(ngx.url("/internal/polly/" + c),
                         headers={"Accept": "text/json"}, timeout=5)
        return r.status_code == 200 and '"subscribers": 1' in r.text
    wait_for(lambda: all(waiting(c) for c in chans), what="3 polls waiting")
    assert sse_status(ngx, "/sub/%s?token=%s" % (chan(), t)) == 403
    for c in chans:
        requests.post(ngx.url("/internal/polly/" + c), data="done")
    for th in threads:
        th.join(timeout=10)
    assert sorted(r.text for r in results.values()) == ["done"] * 3
    # answered: their seats are free again
    s = sse(ngx.url("/sub/%s?token=%s" % (chan(), t)))
    assert s.response.status == 200
    s.close()


def test_first_frame_auth_takes_a_seat(ngx):
    t = token("frames")
    socks = []
    for i in range(3):
        ws = WsClient(ngx.port, "/v1msg", protocols="pulse.v1")
        ws.send_json({"type": "auth", "token": t, "id": i})
        assert ws.recv_json()["type"] == "authenticated"
        socks.append(ws)
    ws = WsClient(ngx.port, "/v1msg", protocols="pulse.v1")
    ws.send_json({"type": "auth", "token": t, "id": 9})
    err = ws.recv_json()
    assert err["code"] == "forbidden" and err["id"] == 9
    assert ws.expect_close().close_code == 1008
    for s in socks:
        s.sock.close()
    still_serves(ngx, "frames2")


def test_publish_rate_per_tenant(ngx):
    t = token("pubco")
    c = chan()
    url = ngx.url("/pub/%s?token=%s" % (c, t))
    codes = [requests.post(url, data="m%d" % i).status_code
             for i in range(3)]
    assert codes == [202, 202, 202]  # the burst
    r = requests.post(url, data="over")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    assert "pulse_tenant_publish_rate" in r.text
    # the refused one was not stored
    info = requests.get(ngx.url("/internal/pubco/%s" % c),
                        headers={"Accept": "text/json"})
    assert '"messages": 3' in info.text
    # another tenant has its own bucket; without a token, no tenant limit
    other = ngx.url("/pub/%s?token=%s" % (chan(), token("else")))
    assert requests.post(other, data="x").status_code == 202
    # the bucket is shared by both workers: more connections do not help
    over = [requests.post(url, data="y", headers={"Connection": "close"})
            .status_code for _ in range(6)]
    # (a per-worker bucket would let the other worker's burst of 3 through)
    assert over.count(202) <= 1, over
    time.sleep(1.1)
    assert requests.post(url, data="later").status_code == 202


def test_publish_rate_on_pulse_v1_and_websocket(ngx):
    t = token("wsco")
    ws = WsClient(ngx.port, "/v1?token=" + t, protocols="pulse.v1")
    for i in range(2):
        ws.send_json({"type": "publish", "channel": "c", "data": "x",
                      "id": i})
        assert ws.recv_json()["type"] == "published"
    ws.send_json({"type": "publish", "channel": "c", "data": "x", "id": 5})
    err = ws.recv_json()
    assert err["code"] == "rate_limited" and err["id"] == 5
    assert "retry in" in err["message"]
    # the socket stays
    ws.send_json({"type": "ping", "id": 6})
    assert ws.recv_json()["type"] == "pong"
    # a plain WebSocket publisher is closed with 1013 Try Again Later
    p = WsClient(ngx.port, "/wspub/%s?token=%s" % (chan(), token("plain")))
    p.send_text("one")
    p.send_text("two")
    f = p.expect_close()
    assert f.close_code == 1013
    still_serves(ngx)
