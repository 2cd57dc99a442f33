"""JWT auth and tenancy (docs/auth.md): tokens minted by PyJWT (an
independent implementation) with keys made by `openssl` here; two tenants
on every transport; 401/403 before any upgrade; per-channel errors inside
pulse.v1; audit lines; bad key files fail `nginx -t`; every refusal leaves
the worker serving the next client."""

import json
import re
import subprocess
import time
import uuid

import jwt as pyjwt
import pytest
import requests

from clients import sse
from conftest import wait_for
from wsclient import HandshakeError, WsClient

SECRET = "an-hs256-secret-of-at-least-32-bytes!"

CONFIG = """
server {
    listen 127.0.0.1:{port} reuseport;
    pulse_jwt_key {keys}/hs.key kid=hs;
    pulse_jwt_key {keys}/jwks.json;
    pulse_jwt_token arg=token header cookie=pulse_token;
    pulse_jwt_tenant_claim tenant;
    pulse_jwt_channels_claim channels;
    pulse_jwt_leeway 5;
    pulse_jwt_max_size 4k;
    pulse_auth_audit all info;

    location ~ ^/sub/(.+)$ {
        pulse_subscriber;
        pulse_channel_id $1;
        pulse_subscriber_first_message oldest;
    }
    location ~ ^/multi/(.+)$ {
        pulse_subscriber;
        pulse_channel_id $1;
        pulse_channel_id_split_delimiter ",";
        pulse_subscriber_first_message oldest;
    }
    location ~ ^/pub/(.+)$ {
        pulse_publisher;
        pulse_channel_id $1;
    }
    location = /v1 {
        pulse_pubsub;
    }
    location = /v1msg {
        pulse_jwt_token arg=token message=2s;
        pulse_pubsub;
    }
    location ~ ^/msgsub/(.+)$ {
        pulse_jwt_token message;
        pulse_subscriber;
        pulse_channel_id $1;
    }
    # the backend's side: no token, it names the tenant itself
    location ~ ^/internal/([\\w.-]+)/(.+)$ {
        pulse_jwt_key off;
        allow 127.0.0.1;
        pulse_publisher;
        pulse_channel_group $1;
        pulse_channel_id $2;
    }
    location ~ ^/open/(.+)$ {
        pulse_jwt_key off;
        pulse_pubsub;
        pulse_channel_id $1;
    }
}
"""


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   capture_output=True)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    with open(d / "hs.key", "w") as f:
        f.write(SECRET + "\n")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-out", str(d / "ec.pem"))
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
            "rsa_keygen_bits:2048", "-out", str(d / "rsa.pem"))
    from cryptography.hazmat.primitives import serialization
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm
    jwks = []
    for name, alg, kid in (("ec.pem", ECAlgorithm, "ec1"),
                           ("rsa.pem", RSAAlgorithm, "rsa1")):
        with open(d / name, "rb") as f:
            priv = serialization.load_pem_private_key(f.read(), None)
        jwk = json.loads(alg.to_jwk(priv.public_key()))
        jwk["kid"] = kid
        jwks.append(jwk)
    with open(d / "jwks.json", "w") as f:
        json.dump({"keys": jwks}, f)
    return d


def token(keys, tenant="a", channels=("**",), alg="HS256", exp_in=600,
          **claims):
    payload = {"sub": "user-" + tenant, "tenant": tenant,
               "exp": int(time.time()) + exp_in}
    if channels is not None:
        payload["channels"] = list(channels) if isinstance(channels, tuple) else channels
    payload.update(claims)
    if alg == "HS256":
        return pyjwt.encode(payload, SECRET, algorithm="HS256",
                            headers={"kid": "hs"})
    name, kid = ("ec.pem", "ec1") if alg == "ES256" else ("rsa.pem", "rsa1")
    with open(keys / name, "rb") as f:
        return pyjwt.encode(payload, f.read(), algorithm=alg,
                            headers={"kid": kid})


@pytest.fixture(scope="module")
def ngx(nginx_factory, keys):
    n = nginx_factory(CONFIG.replace("{keys}", str(keys)))
    return n


def internal_publish(ngx, tenant, chan, body):
    r = requests.post(ngx.url("/internal/%s/%s" % (tenant, chan)), data=body)
    assert r.status_code in (201, 202), r.text
    return r


def test_no_token_is_401_with_bearer_challenge(ngx):
    r = requests.get(ngx.url("/sub/bw"), headers={"Accept": "text/event-stream"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert "no token" in r.text
    r = requests.get(ngx.url("/sub/bw?token=garbage"))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize("alg", ["HS256", "ES256", "RS256"])
def test_each_algorithm_and_every_source(ngx, keys, alg):
    t = token(keys, "a", alg=alg)
    internal_publish(ngx, "a", "src-" + alg, "hello")
    for kw in ({"params": {"token": t}},
               {"headers": {"Authorization": "Bearer " + t}},
               {"cookies": {"pulse_token": t}}):
        r = requests.get(ngx.url("/sub/src-" + alg), **kw)
        assert r.status_code == 200, (kw, r.text)
        assert r.text == "hello"


def test_tenants_never_meet_on_eventsource(ngx, keys):
    ta, tb = token(keys, "a"), token(keys, "b")
    sa = sse(ngx.url("/sub/bw?token=" + ta))
    sb = sse(ngx.url("/sub/bw?token=" + tb))
    assert sa.response.status == 200 and sb.response.status == 200
    internal_publish(ngx, "b", "bw", "for-b")
    internal_publish(ngx, "a", "bw", "for-a")
    got_a = sa.read_until(lambda b: b"for-a" in b)
    got_b = sb.read_until(lambda b: b"for-b" in b)
    assert b"for-b" not in got_a
    assert b"for-a" not in got_b
    sa.close()
    sb.close()


def test_no_spelling_reaches_another_tenant(ngx, keys):
    internal_publish(ngx, "b", "secret", "b-only")
    ta = token(keys, "a")
    def poll(path):
        # an empty channel holds a long-poll: nothing came is the answer
        try:
            return requests.get(ngx.url(path), params={"token": ta},
                                timeout=0.5).text
        except requests.exceptions.ReadTimeout:
            return ""
    for path in ("/sub/secret", "/sub/b%2Fsecret", "/sub/..%2Fb%2Fsecret",
                 "/sub/b/secret", "/sub/B/secret", "/sub/%62/secret",
                 "/multi/x,secret,b/secret", "/multi/b%2Fsecret,..%2Fsecret"):
        assert "b-only" not in poll(path), path
    # and b's own token does read it
    r = requests.get(ngx.url("/sub/secret"), params={"token": token(keys, "b")})
    assert r.text == "b-only"
    # a tenant claim cannot carry the separator
    bad = token(keys, "b/x")
    r = requests.get(ngx.url("/sub/secret"), params={"token": bad})
    assert r.status_code == 403
    assert "tenant" in r.text


def test_acl_on_every_http_transport(ngx, keys):
    t = token(keys, "a", channels={"subscribe": ["metrics.*", "bw"],
                                   "publish": ["jobs.**"]})
    internal_publish(ngx, "a", "metrics.cpu", "m")
    ok = requests.get(ngx.url("/sub/metrics.cpu"), params={"token": t})
    assert ok.status_code == 200 and ok.text == "m"
    for path in ("/sub/metrics.cpu.0", "/sub/metrics", "/sub/faults",
                 "/multi/bw,faults"):
        for accept in ("text/event-stream", "*/*", "multipart/mixed"):
            r = requests.get(ngx.url(path), params={"token": t},
                             headers={"Accept": accept})
            assert r.status_code == 403, (path, accept)
            assert "ACL" in r.text
    r = requests.post(ngx.url("/pub/jobs.1.progress"), params={"token": t},
                      data="50%")
    assert r.status_code in (201, 202)
    r = requests.post(ngx.url("/pub/bw"), params={"token": t}, data="x")
    assert r.status_code == 403
    r = requests.delete(ngx.url("/pub/bw"), params={"token": t})
    assert r.status_code == 403
    # the audit lines: one per refusal, stable fields, no token
    log = ngx.log()
    lines = [l for l in log.splitlines() if "pulse audit:" in l]
    deny = [l for l in lines if 'channel="faults"' in l]
    assert deny, lines[-5:]
    assert re.search(r'decision=deny status=403 tenant="a" sub="user-a" '
                     r'kid="hs" channel="faults" client="127\.0\.0\.1" '
                     r'reason="channel outside the token\'s subscribe ACL"',
                     deny[0]), deny[0]
    assert t not in log


def test_websocket_refusals_are_http_statuses(ngx, keys):
    with pytest.raises(HandshakeError) as e:
        WsClient(ngx.port, "/sub/bw")
    assert e.value.status == 401
    t = token(keys, "a", channels=["wsbw"])
    with pytest.raises(HandshakeError) as e:
        WsClient(ngx.port, "/sub/faults?token=" + t)
    assert e.value.status == 403
    ws = WsClient(ngx.port, "/sub/wsbw?token=" + t)
    internal_publish(ngx, "b", "wsbw", "ws-b")
    internal_publish(ngx, "a", "wsbw", "ws-a")
    assert ws.recv_data().text == "ws-a"
    ws.close()


def test_pulse_v1_errors_per_channel_and_the_socket_stays(ngx, keys):
    t = token(keys, "a", channels={"subscribe": ["v1bw", "metrics.*"],
                                   "publish": ["jobs.**"]})
    ws = WsClient(ngx.port, "/v1?token=" + t, protocols="pulse.v1")
    ws.send_json({"type": "subscribe", "channel": "v1bw", "id": 1})
    assert ws.recv_json()["type"] == "subscribed"
    ws.send_json({"type": "subscribe", "channel": "faults", "id": 2})
    err = ws.recv_json()
    assert (err["type"], err["code"], err["channel"], err["id"]) == \
        ("error", "forbidden", "faults", 2)
    ws.send_json({"type": "publish", "channel": "v1bw", "data": "x", "id": 3})
    assert ws.recv_json()["code"] == "forbidden"
    ws.send_json({"type": "publish", "channel": "jobs.9", "data": "p",
                  "id": 4})
    assert ws.recv_json()["type"] == "published"
    internal_publish(ngx, "b", "v1bw", "theirs")
    internal_publish(ngx, "a", "v1bw", "ours")
    m = ws.recv_json()
    assert m["type"] == "message" and m["data"] == "ours"
    ws.close()
    # each refusal inside the socket is an audit line too, with the
    # socket's claims (its request is gone after the upgrade)
    wait_for(lambda: re.search(
        r'pulse audit: decision=deny status=403 tenant="a" sub="user-a" '
        r'kid="hs" channel="faults" client="127.0.0.1" reason="Subscribing',
        ngx.log()), 5, "the audit line of a pulse.v1 refusal")


def test_pulse_v1_wildcards_stay_within_the_tenant_and_the_acl(ngx, keys):
    """`<prefix>.*` on pulse.v1 (docs/websocket.md): every matching channel
    of the token's tenant, existing ones from now on and new ones from their
    first message, on whichever worker they were published; nothing of
    another tenant, nothing deeper, nothing outside the ACL."""
    pre = "wm" + uuid.uuid4().hex[:12]
    internal_publish(ngx, "a", pre + ".old", "before")
    t = token(keys, "a", channels={"subscribe": [pre + ".**"]})
    clients = []
    while len(clients) < 8 or len(ngx.connections_per_worker()) < 2:
        assert len(clients) < 64, "every socket on one worker"
        ws = WsClient(ngx.port, "/v1?token=" + t, protocols="pulse.v1")
        ws.send_json({"type": "subscribe", "channel": pre + ".*", "id": 1})
        r = ws.recv_json()
        assert (r["type"], r["channel"], r["channels"]) == \
            ("subscribed", pre + ".*", 1), r
        clients.append(ws)
    internal_publish(ngx, "a", pre + ".old", "o1")
    internal_publish(ngx, "a", pre + ".cpu", "c1")     # new
    internal_publish(ngx, "b", pre + ".cpu", "theirs")  # another tenant
    internal_publish(ngx, "a", pre + ".cpu.0", "deep")  # one segment more
    internal_publish(ngx, "a", pre + "x.cpu", "near")
    internal_publish(ngx, "a", pre + ".cpu", "c2")
    internal_publish(ngx, "a", pre + ".mem", "m1")     # new
    want = [(pre + ".old", "o1"), (pre + ".cpu", "c1"),
            (pre + ".cpu", "c2"), (pre + ".mem", "m1")]
    for ws in clients:
        got = []
        for _ in want:
            m = ws.recv_json()
            assert m["type"] == "message", m
            got.append((m["channel"], m["data"]))
        assert sorted(got) == sorted(want)
        # per channel in order
        assert [d for c, d in got if c == pre + ".cpu"] == ["c1", "c2"]
    # wider than the ACL: refused, audited, the socket and wildcard stay
    ws = clients[0]
    for pattern in ("*", "**", pre + "x.*", pre + ".**.x"):
        ws.send_json({"type": "subscribe", "channel": pattern, "id": 2})
        err = ws.recv_json()
        assert err["type"] == "error" and err["id"] == 2, err
        assert err["code"] in ("forbidden", "bad_request"), err
    wait_for(lambda: re.search(
        r'pulse audit: decision=deny status=403 tenant="a" .*channel="\*"',
        ngx.log()), 5, "the audit line of the refused wildcard: " + ngx.log()[-1500:])
    internal_publish(ngx, "a", pre + ".net", "n1")
    m = ws.recv_json()
    assert (m["channel"], m["data"]) == (pre + ".net", "n1")
    ws.send_json({"type": "unsubscribe", "channel": pre + ".*", "id": 3})
    assert ws.recv_json()["type"] == "unsubscribed"
    internal_publish(ngx, "a", pre + ".disk", "after")
    ws.send_json({"type": "ping", "id": 4})
    assert ws.recv_json()["type"] == "pong"  # nothing came before it
    for c in clients[1:]:
        m = c.recv_json()
        assert (m["channel"], m["data"]) == (pre + ".net", "n1")
        m = c.recv_json()
        assert (m["channel"], m["data"]) == (pre + ".disk", "after")
        c.close()
    ws.close()
    # tenant b's widest wildcard sees only b's channels
    tb = token(keys, "b", channels=("**",))
    wb = WsClient(ngx.port, "/v1?token=" + tb, protocols="pulse.v1")
    wb.send_json({"type": "subscribe", "channel": "**", "id": 1})
    assert wb.recv_json()["type"] == "subscribed"
    internal_publish(ngx, "a", pre + ".cpu", "a-only")
    internal_publish(ngx, "b", pre + ".cpu", "b-only")
    m = wb.recv_json()
    assert (m["channel"], m["data"]) == (pre + ".cpu", "b-only")
    wb.close()


def test_expired_and_future_tokens(ngx, keys):
    internal_publish(ngx, "a", "time", "t")
    old = token(keys, "a", exp_in=-60)
    r = requests.get(ngx.url("/sub/time"), params={"token": old})
    assert r.status_code == 401 and "expired" in r.text
    # within the 5 s leeway
    r = requests.get(ngx.url("/sub/time"),
                     params={"token": token(keys, "a", exp_in=-2)})
    assert r.status_code == 200
    r = requests.get(ngx.url("/sub/time"), params={
        "token": token(keys, "a", nbf=int(time.time()) + 600)})
    assert r.status_code == 401 and "not valid yet" in r.text


def test_expiry_ends_every_kind_of_stream(ngx, keys):
    # the server's leeway is 5 s: a token 3 s past exp has 2 s left
    t = token(keys, "a", exp_in=-3)
    start = time.monotonic()
    es = sse(ngx.url("/sub/exp-es?token=" + t))
    ws = WsClient(ngx.port, "/sub/exp-ws?token=" + t)
    v1 = WsClient(ngx.port, "/v1?token=" + t, protocols="pulse.v1")
    body = es.expect_end(timeout=10)
    assert body.endswith(b":401: 401 Token Expired\n\n"), body
    f = ws.expect_close(timeout=10)
    assert (f.close_code, f.close_reason) == (4401, "token expired")
    assert v1.expect_close(timeout=10).close_code == 4401
    r = requests.get(ngx.url("/sub/exp-poll"), params={"token": t},
                     timeout=10)
    assert r.status_code == 401
    assert time.monotonic() - start < 9
    # a fresh token is not ended early
    fresh = sse(ngx.url("/sub/exp-es?token=" + token(keys, "a")))
    internal_publish(ngx, "a", "exp-es", "still")
    assert b"still" in fresh.read_until(lambda b: b"still" in b)
    fresh.close()


def test_pulse_v1_first_frame_auth(ngx, keys):
    ws = WsClient(ngx.port, "/v1msg", protocols="pulse.v1")
    ws.send_json({"type": "subscribe", "channel": "ff", "id": 1})
    assert ws.recv_json()["code"] == "unauthorized"
    ws.send_json({"type": "auth", "token": "nope", "id": 2})
    err = ws.recv_json()
    assert (err["code"], err["id"]) == ("unauthorized", 2)
    t = token(keys, "a", channels=["ff"])
    ws.send_json({"type": "auth", "token": t, "id": 3})
    ok = ws.recv_json()
    assert ok["type"] == "authenticated" and ok["id"] == 3
    assert ok["expires"] == pyjwt.decode(
        t, options={"verify_signature": False})["exp"] + 5
    ws.send_json({"type": "subscribe", "channel": "ff", "id": 4})
    assert ws.recv_json()["type"] == "subscribed"
    internal_publish(ngx, "b", "ff", "theirs")
    internal_publish(ngx, "a", "ff", "ours")
    assert ws.recv_json()["data"] == "ours"
    ws.close()
    # never authenticated: closed at the timeout
    idle = WsClient(ngx.port, "/v1msg", protocols="pulse.v1")
    f = idle.expect_close(timeout=8)
    assert (f.close_code, f.close_reason) == (4401, "authentication timeout")
    # only pulse.v1 can wait for a frame; the URL's channels cannot either
    for path, proto in (("/msgsub/ff", None), ("/msgsub/ff", "pulse.v1")):
        with pytest.raises(HandshakeError) as e:
            WsClient(ngx.port, path, protocols=proto)
        assert e.value.status == 401


def test_pulse_v1_refresh_keeps_the_socket(ngx, keys):
    t = token(keys, "a", exp_in=-3, channels=["rf"])  # 2 s left
    ws = WsClient(ngx.port, "/v1?token=" + t, protocols="pulse.v1")
    ws.send_json({"type": "subscribe", "channel": "rf"})
    assert ws.recv_json()["type"] == "subscribed"
    ws.send_json({"type": "auth", "token": token(keys, "b"), "id": 1})
    assert ws.recv_json()["code"] == "forbidden"  # another tenant
    ws.send_json({"type": "auth", "token": token(keys, "a", channels=["rf"]),
                  "id": 2})
    assert ws.recv_json()["type"] == "authenticated"
    time.sleep(3.5)
    internal_publish(ngx, "a", "rf", "after-refresh")
    assert ws.recv_json()["data"] == "after-refresh"
    ws.send_json({"type": "ping", "id": 3})
    assert ws.recv_json()["type"] == "pong"
    ws.close()


def test_hostile_tokens_leave_the_worker_serving(ngx, keys):
    pids = ngx.worker_pids()
    none = pyjwt.encode({"tenant": "a"}, None, algorithm="none")
    forged = pyjwt.encode({"tenant": "a", "exp": int(time.time()) + 60},
                          SECRET + "x", algorithm="HS256",
                          headers={"kid": "hs"})
    with open(keys / "jwks.json") as f:
        rsa_pub = json.load(f)["keys"][1]
    confused = pyjwt.encode({"tenant": "a"}, json.dumps(rsa_pub),
                            algorithm="HS256", headers={"kid": "rsa1"})
    deep = "eyJhbGciOiJIUzI1NiJ9." + \
        pyjwt.utils.base64url_encode(b'{"a":' + b"[" * 5000 + b"}").decode() \
        + ".c2ln"
    for t in (none, forged, confused, deep, "a.b.c", "x" * 5000,
              "...", "eyJhbGciOiJIUzI1NiIsImtpZCI6Im5vcGUifQ.e30.c2ln"):
        r = requests.get(ngx.url("/sub/bw"), params={"token": t})
        assert r.status_code == 401, (t[:40], r.status_code)
    assert ngx.worker_pids() == pids
    r = requests.get(ngx.url("/sub/bw"), headers={"Accept": "text/event-stream"},
                     params={"token": token(keys, "a")}, stream=True)
    assert r.status_code == 200
    r.close()


def test_open_locations_stay_open(ngx):
    assert requests.post(ngx.url("/open/pub"), data="free").status_code \
        in (201, 202)
    r = requests.get(ngx.url("/open/pub"))
    assert r.status_code == 200 and r.text == "free"


def test_bad_key_files_fail_nginx_t(nginx_factory, keys, tmp_path):
    cases = {
        "short.key": ("tiny\n", "at least 32 bytes"),
        "bad.pem": ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                    "not a PEM public key"),
        "bad.json": ('{"keys": [{"kty": "EC", "crv": "P-256"}]}', "no \"x\""),
    }
    for name, (text, why) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        n = nginx_factory("""
server { listen 127.0.0.1:{port};
  location /s { pulse_jwt_key %s; pulse_subscriber; pulse_channel_id x; } }
""" % path, start=False)
        out = n.test_config()
        assert out.returncode != 0
        assert str(path) in out.stderr and why in out.stderr, out.stderr
    n = nginx_factory("""
server { listen 127.0.0.1:{port};
  location /s { pulse_jwt_tenant_claim t; pulse_subscriber; pulse_channel_id x; } }
""", start=False)
    out = n.test_config()
    assert out.returncode != 0
    assert "without pulse_jwt_key" in out.stderr


def test_reload_picks_up_rotated_keys(nginx_factory, keys, tmp_path):
    key = tmp_path / "rot.key"
    key.write_text("first-secret-first-secret-first-secret")
    n = nginx_factory("""
server { listen 127.0.0.1:{port};
  location /s { pulse_jwt_key %s; pulse_subscriber; pulse_channel_id x;
                pulse_subscribe_existing_channels_only on; } }
""" % key)
    def tok(secret):
        return pyjwt.encode({"exp": int(time.time()) + 60}, secret,
                            algorithm="HS256")
    old, new = tok("first-secret-first-secret-first-secret"), \
        tok("second-secret-second-secret-second-secret")
    assert requests.get(n.url("/s"), headers={
        "Authorization": "Bearer " + old}).status_code != 401
    key.write_text("second-secret-second-secret-second-secret")
    n.reload()
    def refused_old():
        return requests.get(n.url("/s"), headers={
            "Authorization": "Bearer " + old}).status_code == 401
    wait_for(refused_old, what="the old key to be gone after reload")
    assert requests.get(n.url("/s"), headers={
        "Authorization": "Bearer " + new}).status_code != 401


def test_pulse_variables_in_log_format(nginx_factory, keys, tmp_path):
    log = tmp_path / "pv.log"
    n = nginx_factory("""
log_format pv '$request_method ch=$pulse_channel_id type=$pulse_subscriber_type '
              'id=$pulse_message_id tenant=$pulse_tenant sub=$pulse_sub';
server {
    listen 127.0.0.1:{port};
    access_log %s pv;
    pulse_jwt_key %s/hs.key kid=hs;
    pulse_jwt_token arg=token;
    pulse_jwt_tenant_claim tenant;
    pulse_jwt_channels_claim channels;
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
    location ~ ^/pub/(.+)$ {
        pulse_jwt_key off;
        pulse_publisher; pulse_channel_id $1;
        pulse_channel_group a;
    }
}
""" % (log, keys))
    r = requests.post(n.url("/pub/vars"), data="x")
    assert r.status_code in (201, 202)
    t = token(keys, "a")
    r = requests.get(n.url("/sub/vars"), params={"token": t})
    assert r.status_code == 200 and r.text == "x"
    es = sse(n.url("/sub/vars?token=" + t))
    es.close()
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 3,
             what="three access-log lines")
    lines = log.read_text().splitlines()
    assert re.fullmatch(r"POST ch=vars type=- id=\d+:0 tenant=- sub=-",
                        lines[0]), lines[0]
    pub_id = lines[0].split("id=")[1].split(" ")[0]
    assert lines[1] == ("GET ch=vars type=longpoll id=%s tenant=a sub=user-a"
                        % pub_id), lines[1]
    assert lines[2] == "GET ch=vars type=eventsource id=- tenant=a sub=user-a", \
        lines[2]
    # a refusal is audited once: $pulse_channel_id does not check again
    r = requests.get(n.url("/sub/hidden"),
                     params={"token": token(keys, "a", channels=["vars"])})
    assert r.status_code == 403
    wait_for(lambda: len(log.read_text().splitlines()) >= 4,
             what="the refused request's access-log line")
    assert log.read_text().splitlines()[3].startswith("GET ch=hidden ")
    audits = [l for l in n.log().splitlines()
              if "pulse audit:" in l and 'channel="hidden"' in l]
    assert len(audits) == 1, audits


def test_channel_id_charset(nginx_factory):
    n = nginx_factory("""
server {
    listen 127.0.0.1:{port};
    pulse_channel_id_charset a-z0-9._-;
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1;
                             pulse_channel_id_split_delimiter ","; }
    location ~ ^/pub/(.+)$ { pulse_publisher; pulse_channel_id $1; }
    location = /v1 { pulse_pubsub; }
}
""")
    for path in ("/pub/Bad", "/pub/a%20b", "/pub/a:b"):
        r = requests.post(n.url(path), data="x")
        assert r.status_code == 400, path
        assert "pulse_channel_id_charset" in r.text
    assert requests.post(n.url("/pub/ok.1"), data="x").status_code in (201, 202)
    r = requests.get(n.url("/sub/ok.1,Bad"))
    assert r.status_code == 400
    ws = WsClient(n.port, "/v1", protocols="pulse.v1")
    ws.send_json({"type": "subscribe", "channel": "UPPER", "id": 1})
    err = ws.recv_json()
    assert (err["code"], err["channel"]) == ("bad_request", "UPPER")
    ws.send_json({"type": "subscribe", "channel": "ok.1", "id": 2})
    assert ws.recv_json()["type"] == "subscribed"
    ws.close()
    bad = nginx_factory("""
server { listen 127.0.0.1:{port};
  location /s { pulse_channel_id_charset z-a; pulse_subscriber; pulse_channel_id x; } }
""", start=False)
    out = bad.test_config()
    assert out.returncode != 0 and "reversed range" in out.stderr


def test_max_message_size(nginx_factory):
    n = nginx_factory("""
server {
    listen 127.0.0.1:{port};
    pulse_max_message_size 8;
    location ~ ^/pub/(.+)$ { pulse_publisher; pulse_channel_id $1; }
    location ~ ^/sub/(.+)$ { pulse_subscriber; pulse_channel_id $1; }
    location = /v1 { pulse_pubsub; }
}
""")
    r = requests.post(n.url("/pub/size"), data="123456789")
    assert r.status_code == 413
    assert "at most 8 (pulse_max_message_size)" in r.text
    assert requests.post(n.url("/pub/size"), data="12345678").status_code \
        in (201, 202)
    ws = WsClient(n.port, "/v1", protocols="pulse.v1")
    ws.send_json({"type": "publish", "channel": "size", "data": "x" * 9,
                  "id": 1})
    err = ws.recv_json()
    assert (err["code"], err["id"]) == ("too_large", 1)
    ws.send_json({"type": "publish", "channel": "size", "data": "ok",
                  "id": 2})
    assert ws.recv_json()["type"] == "published"
    ws.close()
    # nothing of the refused ones was stored
    info = requests.get(n.url("/pub/size"), headers={"Accept": "text/json"})
    assert '"messages": 2' in info.text, info.text
