#!/usr/bin/env bash
# Cache-hit benchmark: the edge host against nginx proxy_cache and Varnish, side by
# side in one run on this machine; `edge-hook` is the host with the `bluegreen`
# example as a viewer-request hook on every request (a fresh instance each). wrk drives each (1 thread, 50 connections, a
# warm-up then RUNS runs of DURATION, median); CPU per request is the server's
# utime+stime from /proc divided by the requests it served.
#
#   bench/cache-hit.sh            # needs: apt-get install -y nginx varnish wrk
#
# Env: RUNS=3 DURATION=10s CONNS=50 WORKERS=1 PEER_BENCH=../shared/bench
#      OUT=bench/results/cache-hit.md
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEER_BENCH="${PEER_BENCH:-$ROOT/../shared/bench}"
RUNS="${RUNS:-3}"; DURATION="${DURATION:-10s}"; CONNS="${CONNS:-50}"; WORKERS="${WORKERS:-1}"
OUT="${OUT:-$ROOT/bench/results/cache-hit.md}"
BENCH_DIR="${BENCH_DIR:-/tmp/edge-bench}"
EDGE_PORT=18090; CONTROL_PORT=18091; TOKEN=bench-token
HOST_HEADER="bench.example"

for tool in wrk nginx curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y nginx varnish wrk curl" >&2; exit 1; }
done
[ -x "$PEER_BENCH/run.sh" ] || { echo "peer scripts not found at $PEER_BENCH (set PEER_BENCH)" >&2; exit 1; }

cargo build --release -p edge --manifest-path "$ROOT/Cargo.toml" >&2
# From the examples folder, so its .cargo/config.toml (64 KiB guest stack) applies.
(cd "$ROOT/examples" && cargo build --release --locked --target wasm32-wasip2 >&2)
EDGE_BIN="$ROOT/target/release/edge"
HOOK_WASM="$ROOT/examples/target/wasm32-wasip2/release/bluegreen.wasm"

PEERS="origin nginx-cache varnish" BENCH_DIR="$BENCH_DIR" "$PEER_BENCH/run.sh" >&2
edge_pid=""
cleanup() {
    [ -n "$edge_pid" ] && kill "$edge_pid" 2>/dev/null || true
    BENCH_DIR="$BENCH_DIR" "$PEER_BENCH/stop.sh" >/dev/null 2>&1 || true
}
trap cleanup EXIT

rm -rf "$BENCH_DIR/edge"; mkdir -p "$BENCH_DIR/edge"
RUST_LOG=warn "$EDGE_BIN" serve --data-dir "$BENCH_DIR/edge" --listen "127.0.0.1:$EDGE_PORT" \
    --control "127.0.0.1:$CONTROL_PORT" --token "$TOKEN" --workers "$WORKERS" >"$BENCH_DIR/edge/log" 2>&1 &
edge_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$CONTROL_PORT/healthz" >/dev/null && break; sleep 0.05; done
curl -sf -X POST "http://127.0.0.1:$CONTROL_PORT/v1/distributions" -H "authorization: Bearer $TOKEN" \
    -d "{\"aliases\":[\"$HOST_HEADER\"],\"origins\":[{\"id\":\"nginx\",\"domain_name\":\"127.0.0.1:18080\",\"protocol\":\"http\"}],
         \"default_cache_behavior\":{\"target_origin_id\":\"nginx\"}}" >/dev/null
curl -sf -X PUT "http://127.0.0.1:$CONTROL_PORT/v1/hooks/bluegreen" -H "authorization: Bearer $TOKEN" \
    --data-binary "@$HOOK_WASM" >/dev/null
curl -sf -X POST "http://127.0.0.1:$CONTROL_PORT/v1/distributions" -H "authorization: Bearer $TOKEN" \
    -d "{\"aliases\":[\"hook.$HOST_HEADER\"],\"origins\":[{\"id\":\"blue\",\"domain_name\":\"127.0.0.1:18080\",\"protocol\":\"http\"},
         {\"id\":\"green\",\"domain_name\":\"127.0.0.1:18080\",\"protocol\":\"http\"}],
         \"default_cache_behavior\":{\"target_origin_id\":\"blue\",\"hooks\":{\"viewer_request\":{\"module\":\"bluegreen\"}}}}" >/dev/null
for host in "$HOST_HEADER" "hook.$HOST_HEADER"; do
    for obj in 1k.html 100k.html; do
        curl -sf -o /dev/null -H "Host: $host" "http://127.0.0.1:$EDGE_PORT/$obj"
        hit=$(curl -sf -o /dev/null -D - -H "Host: $host" "http://127.0.0.1:$EDGE_PORT/$obj" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}')
        [ "$hit" = "Hit from edge" ] || { echo "edge ($host) did not cache /$obj (x-cache: $hit)" >&2; exit 1; }
    done
done

pids_of() { # target -> pids whose CPU counts
    case $1 in
        edge|edge-hook) echo "$edge_pid";;
        varnish) local p; p=$(cat "$BENCH_DIR/varnish/varnishd.pid"); echo "$p $(ps -o pid= --ppid "$p")";;
        *) local p; p=$(cat "$BENCH_DIR/$1/nginx.pid"); echo "$p $(ps -o pid= --ppid "$p")";;
    esac
}
ticks() { local t=0 p; for p in $(pids_of "$1"); do
    [ -r "/proc/$p/stat" ] && t=$(( t + $(awk '{sub(/^.*\) /,""); print $12+$13}' "/proc/$p/stat") )); done; echo "$t"; }
rss_kb() { local t=0 p; for p in $(pids_of "$1"); do
    [ -r "/proc/$p/status" ] && t=$(( t + $(awk '/^VmRSS:/{print $2}' "/proc/$p/status") )); done; echo "$t"; }
HZ=$(getconf CLK_TCK)
parse_wrk() {
    awk 'function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1000000; return v+0 }
         /Requests\/sec:/ { rps=$2 } $1=="50%" { p50=us($2) } $1=="99%" { p99=us($2) }
         /Non-2xx/ { err+=$NF } /Socket errors:/ { err+=1 }
         END { printf "%s %.0f %.0f %d\n", rps, p50, p99, err+0 }'
}
median() { sort -g | awk '{a[NR]=$1} END { if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }

RAW="$BENCH_DIR/raw.tsv"; : > "$RAW"
dur=${DURATION%s}
for target in edge:$EDGE_PORT edge-hook:$EDGE_PORT nginx-cache:18082 varnish:18083; do
    name=${target%%:*}; port=${target##*:}
    host=$HOST_HEADER; [ "$name" = edge-hook ] && host="hook.$HOST_HEADER"
    [ "$name" = varnish ] && ! [ -f "$BENCH_DIR/varnish/varnishd.pid" ] && continue
    for obj in 1k.html 100k.html; do
        url="http://127.0.0.1:$port/$obj"
        wrk -t1 -c"$CONNS" -d2s -H "Host: $host" "$url" >/dev/null
        for r in $(seq 1 "$RUNS"); do
            t0=$(ticks "$name")
            read -r rps p50 p99 err < <(wrk -t1 -c"$CONNS" -d"$DURATION" --latency -H "Host: $host" "$url" | parse_wrk)
            t1=$(ticks "$name")
            cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v rps="$rps" -v d="$dur" 'BEGIN { printf "%.2f", t / hz * 1e6 / (rps * d) }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$obj" "$r" "$rps" "$p50" "$p99" "$cpu" "$err" >> "$RAW"
            echo "$name $obj run $r: $rps req/s, p50 ${p50}us, p99 ${p99}us, ${cpu} us CPU/req, errors $err" >&2
        done
        printf '%s\t%s\trss\t%s\n' "$name" "$obj" "$(rss_kb "$name")" >> "$RAW"
    done
done

sel() { awk -F'\t' -v n="$1" -v o="$2" -v c="$3" '$1==n && $2==o && $3!="rss" {print $c}' "$RAW" | median; }
mkdir -p "$(dirname "$OUT")"
{
    echo "Cache hit, wrk -t1 -c$CONNS, $RUNS x $DURATION, median; every server on $WORKERS worker; $(nproc) cores; $(date -u +%Y-%m-%d)."
    echo
    echo "| server | object | req/s | p50 µs | p99 µs | CPU µs/req | CPU vs nginx | RSS MiB |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for obj in 1k.html 100k.html; do
        base=$(sel nginx-cache "$obj" 7)
        for name in edge edge-hook nginx-cache varnish; do
            [ -n "$(sel "$name" "$obj" 4)" ] || continue
            cpu=$(sel "$name" "$obj" 7)
            rss=$(awk -F'\t' -v n="$name" -v o="$obj" '$1==n && $2==o && $3=="rss" {print $4}' "$RAW")
            printf '| %s | %s | %.0f | %s | %s | %s | %s | %.1f |\n' "$name" "$obj" "$(sel "$name" "$obj" 4)" \
                "$(sel "$name" "$obj" 5)" "$(sel "$name" "$obj" 6)" "$cpu" \
                "$(awk -v a="$cpu" -v b="$base" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" \
                "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
        done
    done
} > "$OUT"
cat "$OUT"
