#!/bin/bash
# Instructions per WebSocket delivery under callgrind, for builds A/B
# where wall-clock runs are too noisy to tell 1-5% apart:
#   bench/delivery_instructions.sh build/ngx_http_pulse_module.so [other.so]
# TRANSPORT=ws-meta (or sse) measures that transport instead of plain ws.
# One worker, 400 subscribers on 4 channels; runs 200 then 600 messages
# (20,000 and 60,000 deliveries) and divides the difference of the
# instruction totals by the 40,000 deliveries between them, so setup and
# startup cancel out.
set -euo pipefail
TRANSPORT=${TRANSPORT:-ws}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOADGEN=$ROOT/build/loadgen

run() {  # module, messages, per-subscriber expectation -> instructions
    local d port vg
    d=$(mktemp -d)
    port=$((20000 + RANDOM % 10000))
    cat > "$d/nginx.conf" <<C
load_module $1;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1; master_process off; daemon off;
pid $d/nginx.pid; error_log $d/error.log warn;
events { worker_connections 5000; }
http { access_log off; keepalive_requests 10000000;
 client_body_temp_path $d/body;
 server { listen 127.0.0.1:$port;
  location ~ ^/pub/(.+)\$ { pulse_publisher; pulse_channel_id \$1;
                            pulse_message_buffer_length 200; }
  location ~ ^/sub/(.+)\$ { pulse_subscriber; pulse_channel_id \$1;
                            pulse_subscriber_first_message newest; } } }
C
    [ -f "$d/nginx.conf" ] || exit 1
    valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" \
        /usr/sbin/nginx -p "$d" -c "$d/nginx.conf" > "$d/vg.log" 2>&1 &
    vg=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/pub/x" && break
        sleep 0.2
    done
    "$LOADGEN" sub --port "$port" --subs 400 --channels 4 --sources 1 \
        --expect "$3" --transport "$TRANSPORT" --seconds 120 > "$d/sub.out" &
    local sub=$!
    sleep 3
    "$LOADGEN" pub --port "$port" --channels 4 --messages "$2" --window 4 \
        > /dev/null
    wait "$sub"
    [ -f "$d/nginx.pid" ] || { cat "$d/vg.log" >&2; exit 1; }
    kill -QUIT "$(cat "$d/nginx.pid")"
    wait "$vg" || true
    grep -o '"lost":0' "$d/sub.out" > /dev/null \
        || { echo "messages lost: $(cat "$d/sub.out")" >&2; exit 1; }
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$d/vg.log"
    rm -rf "$d"
}

for so in "$@"; do
    so=$(realpath "$so")
    small=$(run "$so" 200 50)
    big=$(run "$so" 600 150)
    echo "$so: $(( (big - small) / 40000 )) instructions per $TRANSPORT delivery"
done
