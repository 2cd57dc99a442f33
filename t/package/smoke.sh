#!/usr/bin/env bash
# The Debian packages as an admin meets them (docs/install.md): lintian
# clean, installed with apt next to Debian's nginx, the module enabled by
# its modules-enabled link and serving the example server from the stock
# /etc/nginx/nginx.conf, the sidecar's unit valid and its ExecStart running
# as an unprivileged transient user with the installed configuration,
# events from Redis reaching an EventSource and a WebSocket; then remove
# keeps the conffile, purge leaves nothing.
#
# Needs root (apt-get, /etc/nginx) and the ports the examples use
# (80, 8080, 6379, 9464) free. `make package-test` runs it after `make deb`.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DEBS=$ROOT/build/deb
VERSION=$(sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
MOD_DEB=$DEBS/libnginx-mod-http-pulse_${VERSION}_amd64.deb
PUB_DEB=$DEBS/pulse-publisher_${VERSION}_amd64.deb
# with their -dbgsym packages: everything `make deb` made
PACKAGES="libnginx-mod-http-pulse pulse-publisher
          libnginx-mod-http-pulse-dbgsym pulse-publisher-dbgsym"
WORK=$(mktemp -d /tmp/pulse-package.XXXXXX)
chmod 0755 "$WORK"
REDIS_PID=
PUB_PID=

step() { echo "package-test: $*"; }
fail() { echo "package-test: FAILED: $*" >&2; exit 1; }

cleanup() {
    set +e
    [ -n "$PUB_PID" ] && kill "$PUB_PID" 2>/dev/null && wait "$PUB_PID"
    [ -s /run/nginx.pid ] && /usr/sbin/nginx -s quit 2>/dev/null && sleep 0.5
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null
    rm -f /etc/nginx/conf.d/pulse.conf
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $PACKAGES \
        >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || fail "needs root (apt-get install, /etc/nginx)"
[ -f "$MOD_DEB" ] && [ -f "$PUB_DEB" ] || fail "no packages in $DEBS: make deb"
for port in 80 8080 6379 9464; do
    if ss -Hltn "sport = :$port" | grep -q .; then
        fail "port $port is in use (the example configurations need it)"
    fi
done
# (nginx -t leaves an empty pid file behind: only a live pid counts)
system_nginx() { [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; }
if system_nginx; then
    fail "the system's nginx is running (/run/nginx.pid); this test starts it"
fi

# ------------------------------------------------------------- make install
step "make install DESTDIR=... PREFIX=/usr/local"
make -s -C "$ROOT" install DESTDIR="$WORK/stage" PREFIX=/usr/local >/dev/null
for f in lib/nginx/modules/ngx_http_pulse_module.so bin/pulse-publisher \
         bin/pulse-migrate etc/pulse-publisher/publisher.yaml \
         lib/systemd/system/pulse-publisher.service \
         share/man/man1/pulse-publisher.1 share/man/man1/pulse-migrate.1 \
         share/doc/pulse/examples/pulse.conf.example \
         share/doc/pulse/examples/pulse-proxy.conf.example \
         share/doc/pulse/examples/pulse-ingest.conf.example \
         share/doc/pulse/examples/publisher-ingest.yaml.example; do
    [ -f "$WORK/stage/usr/local/$f" ] || fail "make install: no $f"
done
grep -qx 'ExecStart=/usr/local/bin/pulse-publisher -c /usr/local/etc/pulse-publisher/publisher.yaml' \
    "$WORK/stage/usr/local/lib/systemd/system/pulse-publisher.service" \
    || fail "make install: the unit's paths are not filled in"
# a second install keeps an edited configuration
echo "# edited" >> "$WORK/stage/usr/local/etc/pulse-publisher/publisher.yaml"
make -s -C "$ROOT" install-publisher DESTDIR="$WORK/stage" PREFIX=/usr/local \
    >/dev/null
grep -q "^# edited" "$WORK/stage/usr/local/etc/pulse-publisher/publisher.yaml" \
    || fail "make install replaced an existing publisher.yaml"

# ------------------------------------------------------------- lintian
step "lintian"
# As an unprivileged user (lintian warns when run as root), on copies it
# can read.
cp "$DEBS"/*.changes "$DEBS"/*.deb "$DEBS"/*.buildinfo "$WORK"/
chmod 0644 "$WORK"/*
setpriv --reuid=nobody --regid=nogroup --clear-groups \
    env HOME="$WORK" lintian --fail-on error,warning --info \
    "$WORK"/*.changes || fail "lintian"

# ------------------------------------------------------------- install
step "apt-get install ./build/deb/*.deb"
(cd "$ROOT" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    ./build/deb/*.deb >/dev/null)
link=/etc/nginx/modules-enabled/50-mod-http-pulse.conf
[ -L "$link" ] || fail "$link was not made"
grep -qx 'load_module modules/ngx_http_pulse_module.so;' "$link" \
    || fail "$link: $(cat "$link")"
dpkg-query -W -f='${Conffiles}\n' pulse-publisher \
    | grep -q ' /etc/pulse-publisher/publisher.yaml ' \
    || fail "/etc/pulse-publisher/publisher.yaml is not a conffile"
[ "$(/usr/bin/pulse-publisher --version)" = "pulse-publisher $VERSION" ] \
    || fail "pulse-publisher --version: $(/usr/bin/pulse-publisher --version)"
for page in pulse-publisher pulse-migrate; do
    [ -f /usr/share/man/man1/$page.1.gz ] || fail "no man page for $page"
done
/usr/bin/pulse-migrate --help | grep -q '^usage: pulse-migrate' \
    || fail "pulse-migrate --help"

# ------------------------------------------------------------- nginx
step "nginx with the stock nginx.conf and the example server"
cp /usr/share/doc/libnginx-mod-http-pulse/examples/pulse.conf.example \
    /etc/nginx/conf.d/pulse.conf
/usr/sbin/nginx -t -q || fail "nginx -t"
/usr/sbin/nginx
for _ in $(seq 50); do
    curl -sf -o /dev/null http://127.0.0.1:8080/pulse_status && break
    sleep 0.1
done
status=$(curl -sf http://127.0.0.1:8080/pulse_status) || fail "no stub status"
grep -qx "pulse version: $VERSION" <<<"$status" \
    || fail "stub status: $status"

# ------------------------------------------------------------- the unit
step "systemd unit"
unit=/lib/systemd/system/pulse-publisher.service
systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "$exec_start" = "/usr/bin/pulse-publisher -c /etc/pulse-publisher/publisher.yaml" ] \
    || fail "ExecStart=$exec_start"
if [ -e /etc/systemd/system/multi-user.target.wants/pulse-publisher.service ]; then
    fail "the unit was enabled on install"
fi

# ------------------------------------------------------------- end to end
step "Redis -> pulse-publisher (as a transient user) -> nginx -> clients"
redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
# The unit's ExecStart, as DynamicUser runs it: a uid and gid of their own
# in systemd's dynamic range, no groups, no new privileges.
setpriv --reuid=61184 --regid=61184 --clear-groups --no-new-privs \
    $exec_start 2>"$WORK/publisher.log" &
PUB_PID=$!
for _ in $(seq 50); do
    curl -sf -o /dev/null http://127.0.0.1:9464/healthz && break
    sleep 0.1
done
curl -sf http://127.0.0.1:9464/healthz | grep -qx ok \
    || fail "publisher not healthy: $(cat "$WORK/publisher.log")"

/usr/bin/python3 - "$ROOT" <<'EOF' || fail "end to end"
import subprocess, sys, time
sys.path.insert(0, sys.argv[1] + "/t/integration")
from clients import sse
from wsclient import WsClient

s = sse("http://127.0.0.1:8080/sub/faults")
ws = WsClient(8080, "/sub/faults")
deadline = time.monotonic() + 10
# the example's "faults" source: PUBLISH faults -> channel faults; until
# the sidecar's SUBSCRIBE is in, PUBLISH reaches no one
while subprocess.run(["redis-cli", "-p", "6379", "PUBLISH", "faults",
                      "link down"], capture_output=True,
                     text=True).stdout.strip() == "0":
    assert time.monotonic() < deadline, "the sidecar never subscribed"
    time.sleep(0.1)
s.read_until(lambda b: b"data: link down\n\n" in b)
assert ws.recv_data().payload == b"link down"
print("package-test: an event reached EventSource and WebSocket")
EOF
kill "$PUB_PID"; wait "$PUB_PID" || fail "the sidecar's exit: $?"
PUB_PID=
grep -q "publisher: stopping: 1 published, 0 dropped" "$WORK/publisher.log" \
    || fail "publisher log: $(cat "$WORK/publisher.log")"
/usr/sbin/nginx -s quit
for _ in $(seq 50); do system_nginx || break; sleep 0.1; done
system_nginx && fail "nginx did not stop"
rm -f /etc/nginx/conf.d/pulse.conf

# ------------------------------------------------------------- remove, purge
step "remove keeps the configuration, purge leaves nothing"
# every file the packages installed (directories may be shared)
dpkg -L $PACKAGES | while read -r f; do [ -d "$f" ] || echo "$f"; done \
    > "$WORK/files"
[ -s "$WORK/files" ] || fail "dpkg -L listed no files"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq $PACKAGES >/dev/null
[ -f /etc/pulse-publisher/publisher.yaml ] || fail "remove deleted the conffile"
[ ! -e "$link" ] || fail "remove left $link enabled"
[ ! -e /usr/lib/nginx/modules/ngx_http_pulse_module.so ] \
    || fail "remove left the module"
/usr/sbin/nginx -t -q || fail "nginx -t after remove"
# (the -dbgsym packages have no configuration: remove took them entirely)
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq libnginx-mod-http-pulse \
    pulse-publisher >/dev/null
for p in /etc/pulse-publisher "$link" "$link.removed" /usr/bin/pulse-publisher \
         /usr/share/nginx/modules-available/mod-http-pulse.conf \
         /lib/systemd/system/pulse-publisher.service \
         /usr/share/doc/libnginx-mod-http-pulse /usr/share/doc/pulse-publisher; do
    [ ! -e "$p" ] && [ ! -L "$p" ] || fail "purge left $p"
done
while read -r f; do
    [ ! -e "$f" ] && [ ! -L "$f" ] || fail "purge left $f"
done < "$WORK/files"
if dpkg-query -W -f='${Status}\n' $PACKAGES 2>/dev/null \
        | grep -qv 'not-installed'; then
    fail "dpkg still knows the packages"
fi
step "ok"
