"""make bench, connection setup (issue 13): new subscribers per second of
server CPU, EventSource and WebSocket, without auth, with an HS256, ES256
and RS256 token (cache cold and warm), and through an authorize hook to a
local upstream: Pulse's pulse_authorize_request and nchan's
nchan_authorize_request, the only auth nchan has.

- cold: every subscriber has a token of its own, on a fresh nginx: each
  connection verifies a signature;
- warm: the subscribers share 50 tokens that a warm-up pass has shown to
  both workers (each token 10 times): a reconnect storm of clients whose
  tokens were verified before, served from the per-worker cache;
- hook: the upstream is a location of the same nginx (`return 204`), the
  cheapest app there is, so that its CPU is counted with the server's.

Server CPU is the nginx workers' time on the CPU (/proc/PID/schedstat,
in ns) between the first connect and the last response header."""

import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

import run

WARM_TOKENS = 50

CONF = run.CONF_HEAD + """    X_shared_memory_size 256m;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=8192;
        # prefix locations, the channel in ?c=: every mode finds its
        # location and its channel at the same cost (regex locations would
        # be tried in order, and the later ones pay for the earlier)
        location /open/ {{ X_subscriber; X_channel_id $arg_c; }}
        location /hook/ {{
            X_subscriber; X_channel_id $arg_c;
            X_authorize_request /_auth;
        }}
        location = /_auth {{
            internal;
            proxy_pass http://127.0.0.1:{port}/_app;
            proxy_pass_request_body off;
        }}
        location = /_app {{ return 204; }}
        location ~ ^/pub/(.+)$ {{
            X_publisher; X_channel_id $1;
            X_message_buffer_length 200;
        }}
{jwt}
    }}
}}
"""

JWT = """
        location /{name}/ {{
            pulse_subscriber; pulse_channel_id $arg_c;
            pulse_jwt_key {key};
            pulse_jwt_token arg=token;
        }}"""

SECRET = "a-setup-benchmark-secret-of-32-bytes-or-more"


class SetupServer(run.Server):
    def __init__(self, nginx, module, flavor, keys):
        jwt = ""
        if flavor == "pulse":
            jwt = "".join(JWT.format(name=n, key=os.path.join(keys, k))
                          for n, k in (("hs", "hs.key"), ("es", "es.pub"),
                                       ("rs", "rs.pub")))
        super().__init__(nginx, module, flavor, CONF, jwt=jwt)

    def cpu_seconds(self):
        # schedstat's time on the CPU, in ns: a setup costs microseconds,
        # far below /proc/PID/stat's 10 ms ticks
        total = 0
        for p in self.workers():
            with open("/proc/%d/schedstat" % p) as f:
                total += int(f.read().split()[0])
        return total / 1e9


def make_keys(d):
    def openssl(*args):
        subprocess.run(["openssl"] + list(args), check=True,
                       capture_output=True)
    with open(os.path.join(d, "hs.key"), "w") as f:
        f.write(SECRET)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-out", os.path.join(d, "es.pem"))
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
            "rsa_keygen_bits:2048", "-out", os.path.join(d, "rs.pem"))
    for k in ("es", "rs"):
        openssl("pkey", "-in", os.path.join(d, k + ".pem"), "-pubout",
                "-out", os.path.join(d, k + ".pub"))


def make_tokens(d, alg, n, tag):
    """n tokens, each with a sub of its own; one per line of a file."""
    import jwt as pyjwt
    key = SECRET
    if alg != "HS256":
        # parsed once: PyJWT would parse a PEM string for every token
        from cryptography.hazmat.primitives import serialization
        with open(os.path.join(d, "es.pem" if alg == "ES256"
                               else "rs.pem"), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
    exp = int(time.time()) + 3600
    path = os.path.join(d, "%s-%s.tokens" % (alg, tag))
    with open(path, "w") as f:
        for i in range(n):
            f.write(pyjwt.encode({"sub": "%s-%d" % (tag, i), "exp": exp},
                                 key, algorithm=alg) + "\n")
    return path


def connect(srv, n, transport, path, tokens=None):
    """n subscribers at once; returns the server CPU seconds until every
    one has its response header, and the failures."""
    kw = {"subs": n, "channels": 100, "sources": 4, "transport": transport,
          "path": path, "seconds": 60}
    if tokens:
        kw["tokens"] = tokens
    cpu0 = srv.cpu_seconds()
    p = run.start_subs(srv, **kw)
    cpu = srv.cpu_seconds() - cpu0
    p.send_signal(signal.SIGTERM)
    r = run.finish_subs(p)
    # let the closes settle before the next measure
    time.sleep(0.3)
    return cpu, r["errors"]


def modes(flavor):
    out = [("no auth", "/open/?c=s{c}", None, None),
           ("authorize hook", "/hook/?c=s{c}", None, None)]
    if flavor == "pulse":
        for alg, loc in (("HS256", "hs"), ("ES256", "es"), ("RS256", "rs")):
            for cache in ("cold", "warm"):
                out.append(("%s %s" % (alg, cache),
                            "/%s/?c=s{c}&token={t}" % loc, alg, cache))
    return out


def run_setup(nginx, module, quick, rounds, d):
    n = 2000 if quick else 5000
    tokens = {}
    for alg in ("HS256", "ES256", "RS256"):
        tokens[(alg, "warm")] = make_tokens(d, alg, WARM_TOKENS, "warm")
    results = {}  # (flavor, transport, mode) -> [setups per CPU s]
    errors = 0
    for rnd in range(rounds):
        for flavor in ("pulse", "nchan"):
            for transport in ("sse", "ws"):
                for mode, path, alg, cache in modes(flavor):
                    srv = SetupServer(nginx, module if flavor == "pulse"
                                      else run.NCHAN, flavor, d)
                    try:
                        tok = None
                        if cache == "cold":
                            # a fresh set each run: never seen before
                            tok = make_tokens(d, alg, n, "c%d%s" % (
                                rnd, transport))
                        elif cache == "warm":
                            tok = tokens[(alg, "warm")]
                            connect(srv, WARM_TOKENS * 10, transport, path,
                                    tok)
                        try:
                            cpu, err = connect(srv, n, transport, path, tok)
                        except RuntimeError as e:
                            # a run whose subscribers did not all get in is
                            # reported, not measured
                            print("connection-setup: %s %s %s: %s" % (
                                flavor, transport, mode, e), flush=True)
                            errors += n
                            continue
                        errors += err
                        results.setdefault((flavor, transport, mode),
                                           []).append(n / max(cpu, 0.01))
                    finally:
                        srv.stop()
    return n, results, errors


def fanout(srv, q, path, tokens):
    """run.fanout through a location with or without auth: deliveries per
    server CPU s must not depend on how the subscribers got in."""
    subs, chans, per = (2000, 20, 10) if q else (10000, 100, 20)
    kw = {"subs": subs, "channels": chans, "sources": 4, "expect": per,
          "path": path}
    if tokens:
        kw["tokens"] = tokens
    s = run.start_subs(srv, **kw)
    time.sleep(0.5)
    cpu0 = srv.cpu_seconds()
    run.publish(srv, channels=chans, messages=chans * per, window=4,
                path="/pub/s{c}")
    r = run.finish_subs(s)
    cpu = srv.cpu_seconds() - cpu0
    return r["deliveries"] / max(cpu, 1e-6), r["lost"] + r["errors"]


def run_fanout(nginx, module, quick, rounds, keys):
    toks = {alg: make_tokens(keys, alg, WARM_TOKENS, "fan")
            for alg in ("HS256", "ES256")}
    cases = [("no auth", "/open/?c=s{c}", None),
             ("HS256", "/hs/?c=s{c}&token={t}", toks["HS256"]),
             ("ES256", "/es/?c=s{c}&token={t}", toks["ES256"])]
    res = {}
    bad = 0
    for _ in range(rounds):
        for name, path, tok in cases:
            srv = SetupServer(nginx, module, "pulse", keys)
            try:
                rate, errs = fanout(srv, quick, path, tok)
                bad += errs
                res.setdefault(name, []).append(rate)
            finally:
                srv.stop()
    med = {k: statistics.median(v) for k, v in res.items()}
    lines = ["\n### Fan-out with auth on (Pulse only)\n",
             "EventSource fan-out as fanout-sse, the subscribers in through "
             "each location; deliveries per server CPU s.%s\n" % (
                 "" if bad == 0 else " **%d lost or failed**" % bad),
             "| subscribers' auth | deliveries per server CPU s | / no auth |",
             "|---|---|---|"]
    for name, _, _ in cases:
        lines.append("| %s | %s | %.3f |" % (name, run.fmt(med[name]),
                                           med[name] / med["no auth"]))
    return "\n".join(lines) + "\n"


def run_paired(nginx, module, quick, rounds, d, tokens):
    """Warm JWT against no auth on the same server, alternating batches:
    machine drift between runs is larger than the 10% asked of the warm
    path, and here it hits both sides alike."""
    n = 1000 if quick else 2000
    out = {}
    for transport in ("sse", "ws"):
        for alg, loc in (("HS256", "hs"), ("ES256", "es"), ("RS256", "rs")):
            srv = SetupServer(nginx, module, "pulse", d)
            try:
                path = "/%s/?c=s{c}&token={t}" % loc
                tok = tokens[(alg, "warm")]
                connect(srv, WARM_TOKENS * 10, transport, path, tok)
                open_cpu = jwt_cpu = 0.0
                for _ in range(max(rounds, 3) * 2):
                    c, _ = connect(srv, n, transport, "/open/?c=s{c}")
                    open_cpu += c
                    c, _ = connect(srv, n, transport, path, tok)
                    jwt_cpu += c
                out[(transport, alg)] = open_cpu / jwt_cpu
            finally:
                srv.stop()
    return out


def report(nginx, module, quick, rounds):
    d = tempfile.mkdtemp(prefix="bench-setup-keys-")
    make_keys(d)
    n, res, errors = run_setup(nginx, module, quick, rounds, d)
    med = {k: statistics.median(v) for k, v in res.items()}
    lines = ["## connection-setup\n",
             "%d new subscribers at once per run, %d rounds, medians; "
             "setups per server CPU s (higher is better). Ratios: to Pulse "
             "without auth on the same transport, and to nchan's "
             "nchan_authorize_request.%s\n" % (
                 n, rounds, "" if errors == 0 else
                 " **%d subscribers failed**" % errors),
             "| mode | EventSource | WebSocket | EventSource / no auth | "
             "WebSocket / no auth | EventSource / nchan hook | "
             "WebSocket / nchan hook |",
             "|---|---|---|---|---|---|---|"]
    rows = [("pulse", m[0]) for m in modes("pulse")] + \
        [("nchan", m[0]) for m in modes("nchan")]
    for flavor, mode in rows:
        if any((flavor, t, mode) not in med for t in ("sse", "ws")):
            continue
        cells = []
        for t in ("sse", "ws"):
            cells.append(run.fmt(med[(flavor, t, mode)]))
        for t in ("sse", "ws"):
            cells.append("%.2f" % (med[(flavor, t, mode)]
                                   / med[("pulse", t, "no auth")]))
        for t in ("sse", "ws"):
            cells.append("%.2f" % (med[(flavor, t, mode)]
                                   / med[("nchan", t, "authorize hook")]))
        lines.append("| %s %s | %s |" % (
            "Pulse" if flavor == "pulse" else "nchan", mode,
            " | ".join(cells)))
    tokens = {(alg, "warm"): make_tokens(d, alg, WARM_TOKENS, "pair")
              for alg in ("HS256", "ES256", "RS256")}
    paired = run_paired(nginx, module, quick, rounds, d, tokens)
    lines += ["\n### Warm cache against no auth, paired\n",
              "One server per row, batches of subscribers alternating "
              "between the open location and the JWT one (warm cache); "
              "ratio of setups per server CPU s, JWT / no auth.\n",
              "| token | EventSource | WebSocket |", "|---|---|---|"]
    for alg in ("HS256", "ES256", "RS256"):
        lines.append("| %s warm | %.3f | %.3f |" % (
            alg, paired[("sse", alg)], paired[("ws", alg)]))
    text = "\n".join(lines) + "\n" + run_fanout(nginx, module, quick, rounds,
                                                 d)
    shutil.rmtree(d, ignore_errors=True)
    return text, med
