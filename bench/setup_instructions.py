#!/usr/bin/python3
"""Instructions per connection setup, by auth mode (docs/performance.md,
"Connection setup with auth"): one nginx worker (master_process off)
under callgrind with bench/setup_bench.py's config, 1,000 EventSource
setups per mode after a warm-up, counters zeroed in between. Instruction
counts do not drift with the machine as wall-clock CPU does.

    /usr/bin/python3 bench/setup_instructions.py [--module build/...so]
"""

import argparse
import os
import socket
import subprocess
import tempfile
import time

import run
import setup_bench as sb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--module", default=os.path.join(
        run.ROOT, "build", "ngx_http_pulse_module.so"))
    ap.add_argument("--setups", type=int, default=1000)
    a = ap.parse_args()
    keys = tempfile.mkdtemp(prefix="bench-setup-keys-")
    sb.make_keys(keys)
    toks = {alg: sb.make_tokens(keys, alg, sb.WARM_TOKENS, "warm")
            for alg in ("HS256", "ES256", "RS256")}
    prefix = tempfile.mkdtemp(prefix="bench-callgrind-")
    port = run.free_port()
    jwt = "".join(sb.JWT.format(name=n, key=os.path.join(keys, k))
                  for n, k in (("hs", "hs.key"), ("es", "es.pub"),
                               ("rs", "rs.pub")))
    conf = sb.CONF.format(module=os.path.abspath(a.module), prefix=prefix,
                          port=port, jwt=jwt,
                          user="user root;" if os.geteuid() == 0 else "")
    conf = conf.replace("X_", "pulse_").replace(
        "worker_processes 2;", "worker_processes 1;\nmaster_process off;")
    with open(os.path.join(prefix, "nginx.conf"), "w") as f:
        f.write(conf)
    p = subprocess.Popen(
        ["valgrind", "--tool=callgrind",
         "--callgrind-out-file=" + os.path.join(prefix, "cg.out"), a.nginx,
         "-p", prefix, "-c", os.path.join(prefix, "nginx.conf"), "-e",
         os.path.join(prefix, "error.log")], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.2)

    class Target:  # what sb.connect needs of a server
        pass
    srv = Target()
    srv.port = port
    srv.cpu_seconds = lambda: 0.0

    def count():
        out = subprocess.run(["callgrind_control", "-e", "Ir", str(p.pid)],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.strip().startswith("Th 1"):
                return int(line.split()[-1].replace(",", ""))
        raise RuntimeError("no counter in %r" % out)

    base = None
    print("| mode | instructions per setup | / no auth |\n|---|---|---|")
    for name, path, tok in (
            ("no auth", "/open/?c=s{c}", None),
            ("HS256 warm", "/hs/?c=s{c}&token={t}", toks["HS256"]),
            ("ES256 warm", "/es/?c=s{c}&token={t}", toks["ES256"]),
            ("RS256 warm", "/rs/?c=s{c}&token={t}", toks["RS256"])):
        if tok:
            sb.connect(srv, 500, "sse", path, tok)  # every token verified
        subprocess.run(["callgrind_control", "-z", str(p.pid)],
                       capture_output=True)
        sb.connect(srv, a.setups, "sse", path, tok)
        per = count() / a.setups
        base = base or per
        print("| %s | %d | %.2f |" % (name, per, per / base), flush=True)
    p.terminate()
    p.wait()


if __name__ == "__main__":
    main()
