#!/usr/bin/env bash
# Edge performance suite: the edge host against nginx (proxy_cache, proxy_pass),
# Varnish and HAProxy on this machine, one command from a fresh clone.
#
#   bench/suite.sh                         # ~20 min with the defaults on 2 cores, plus the build
#   RUNS=1 DURATION=2s PASSES=1 SCENARIOS="hit-1k pass-1k" bench/suite.sh   # a quick look
#
# What it does:
#   1. checks the tools (nginx varnish haproxy wrk gnuplot curl python3; as root it
#      installs the missing ones with apt-get, otherwise prints the apt-get line),
#   2. builds `edge` (cargo build --release -p edge) and the example hooks
#      (examples/, wasm32-wasip2),
#   3. writes its peers' configs from bench/peers/ into $BENCH_DIR and starts them on
#      loopback ports 18180-18186: an nginx origin (static /1k.html, /100k.html and a
#      sparse 1 GiB /1g.bin, Cache-Control: max-age=60, always 1 worker), nginx
#      proxy_cache, nginx proxy_pass (upstream keep-alive), Varnish (malloc) and
#      HAProxy (pass-through), then `edge serve` with one distribution per scenario,
#   4. runs the scenarios once per pass (PASSES: "1" = every server on one worker,
#      "all" = one worker per core) and writes bench/results/suite.{md,csv,png}.
#
# How it measures: each throughput scenario is a warm-up (WARMUP) and then RUNS runs
# of `wrk -t1 -c$CONNS -d$DURATION --latency`; the table has the medians. CPU per
# request is the utime+stime ticks (/proc/PID/stat) of the server's processes - the
# main process and every descendant (nginx master and workers, varnishd manager and
# child, ...; a process's ticks include all its threads) - taken just before and just
# after each wrk run, divided by the requests wrk completed. The origin's CPU is not
# counted. RSS is the sum of VmRSS over the same processes after the runs. Varnish
# cannot be held to one worker: it runs a thread per active connection (noted in the
# output). Before each edge run the suite checks the x-cache header (Hit for cache
# scenarios, Miss twice and two requests at the origin for pass-through) and during
# it counts edge_requests_total{cache=...} on /metrics, so the table says what edge
# actually served.
#
# Scenarios (SCENARIOS, in this order):
#   hit-1k hit-100k   cache hits: edge, nginx-cache, varnish (reference nginx-cache)
#   hit-100k-disk     cache hits from disk: edge restarted with --cache-dir and a memory
#                     tier too small for the object (every hit read from its file), beside
#                     nginx-cache (proxy_cache serves from files with sendfile); edge is
#                     then started again as before
#   hit-gzip-10k      a 10 KiB HTML page hit by a viewer sending a browser's Accept-Encoding:
#                     edge (compress on: stores and serves brotli), nginx-cache (gzip on,
#                     per response) (ref nginx-cache). Every other scenario's behavior
#                     has compress off and its wrk sends no Accept-Encoding.
#   pass-1k pass-100k no cache: edge (ttl 0 behavior), nginx-pass, haproxy (ref nginx-pass)
#   hook-1k           edge hit with the bluegreen hook on viewer_request (ref nginx-cache hit-1k)
#   hooks4-1k         edge hit with hooks on all four events (ref nginx-cache hit-1k)
#   bluegreen-1k      the bluegreen routing on a hit, for a fresh viewer each request (no
#                     cookie; green's share 50 %, so both arms and the Set-Cookie run): edge
#                     with the bluegreen hook on viewer_request and viewer_response, beside
#                     nginx-njs (proxy_cache with the same routing in njs, bench/peers/
#                     bluegreen.js); each one's hook cost is its CPU/req over its plain hit-1k
#   churn             edge hit-1k while a config PUT lands every second (ref edge hit-1k req/s)
#   stream-1g         1 GiB through edge and nginx-pass with curl: throughput, VmHWM before/after
#   idle-10k          RSS before/after IDLE_CONNS keep-alive connections that sent one request
#                     (bench/idle_conns.py): edge, nginx-cache, varnish, haproxy
#   hostile-10k       hit-1k without, then with HOSTILE_CONNS hostile connections held open
#                     (bench/hostile_conns.py: lone P, partial preface, h2c, slowloris head,
#                     a reader that stops reading, TLS after the handshake): edge, nginx-cache;
#                     p99, failed requests, descriptors and RSS
#
# Env knobs: RUNS=3 DURATION=10s CONNS=50 WARMUP=2s PASSES="1 all" SCENARIOS=(all above)
#   IDLE_CONNS=10000 BENCH_DIR=/tmp/edge-suite OUT_DIR=bench/results SKIP_BUILD=0
#   EDGE_BIN=(target/release/edge, built by the suite; given, it is measured as it is)
#   QUIET_WAIT=60 QUIET_PCT=20 QUIET_BUDGET=1200 RUN_OTHER_MAX=25 RUN_RETRIES=2: this is
#   meant for a quiet machine. Before each run the suite waits (up to QUIET_WAIT s, and
#   QUIET_BUDGET s in all, repeated runs included) until other processes use less than
#   QUIET_PCT % of a core; a run during which they used more than RUN_OTHER_MAX % is
#   repeated (up to RUN_RETRIES times, while the budget lasts). The table notes the other
#   load seen during the runs it keeps.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/bench"
ALL_SCENARIOS="hit-1k hit-100k hit-100k-disk hit-gzip-10k pass-1k pass-100k hook-1k hooks4-1k bluegreen-1k churn stream-1g idle-10k hostile-10k"
RUNS="${RUNS:-3}"; DURATION="${DURATION:-10s}"; CONNS="${CONNS:-50}"; WARMUP="${WARMUP:-2s}"
PASSES="${PASSES:-1 all}"; SCENARIOS="${SCENARIOS:-$ALL_SCENARIOS}"
IDLE_CONNS="${IDLE_CONNS:-10000}"
HOSTILE_CONNS="${HOSTILE_CONNS:-10000}"
QUIET_WAIT="${QUIET_WAIT:-60}"; QUIET_PCT="${QUIET_PCT:-20}"; QUIET_BUDGET="${QUIET_BUDGET:-1200}"
RUN_OTHER_MAX="${RUN_OTHER_MAX:-25}"; RUN_RETRIES="${RUN_RETRIES:-2}"
QUIET_SPENT=0; RUNS_REPEATED=0
BENCH_DIR="${BENCH_DIR:-/tmp/edge-suite}"
OUT_DIR="${OUT_DIR:-$ROOT/bench/results}"
SKIP_BUILD="${SKIP_BUILD:-0}"

ORIGIN_PORT=18180; NGINX_PASS_PORT=18181; NGINX_CACHE_PORT=18182; VARNISH_PORT=18183
HAPROXY_PORT=18184; EDGE_PORT=18185; CONTROL_PORT=18186; EDGE_TLS_PORT=18187
NGINX_NJS_PORT=18188
ORIGIN="127.0.0.1:$ORIGIN_PORT"
TOKEN="suite-token-$$"
HZ=$(getconf CLK_TCK)
NPROC=$(nproc)
T_START=$(date +%s)

log() { printf '[suite %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for sc in $SCENARIOS; do
    case " $ALL_SCENARIOS " in *" $sc "*) ;; *) die "unknown scenario '$sc' (known: $ALL_SCENARIOS)";; esac
done
for p in $PASSES; do
    case $p in 1|all|[0-9]*) ;; *) die "PASSES takes 1, all or a worker count, not '$p'";; esac
done
[[ "$DURATION" =~ ^[0-9]+s$ ]] || die "DURATION must be whole seconds like 10s"
want() { case " $SCENARIOS " in *" $1 "*) return 0;; esac; return 1; }
# hook-1k, hooks4-1k, bluegreen-1k and churn are compared with hit-1k of the same pass.
if ! want hit-1k && { want hook-1k || want hooks4-1k || want bluegreen-1k || want churn; }; then
    SCENARIOS="hit-1k $SCENARIOS"; log "adding hit-1k: hook-1k, hooks4-1k, bluegreen-1k and churn are compared with it"
fi

# ---------------------------------------------------------------- tools
APT_LINE="apt-get install -y nginx varnish haproxy wrk gnuplot-nox curl python3"
missing=()
for pair in nginx:nginx varnishd:varnish haproxy:haproxy wrk:wrk gnuplot:gnuplot-nox curl:curl python3:python3; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing ${missing[*]} with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 || {
            apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2; }
    else
        echo "missing: ${missing[*]}. Install with:" >&2
        echo "    $APT_LINE" >&2
        exit 1
    fi
fi
# nginx's JavaScript module, for the nginx-njs contender (bluegreen-1k).
NJS_MODULE=/usr/lib/nginx/modules/ngx_http_js_module.so
if want bluegreen-1k && [ ! -f "$NJS_MODULE" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing libnginx-mod-http-js with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y libnginx-mod-http-js >&2 || {
            apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y libnginx-mod-http-js >&2; }
    else
        die "bluegreen-1k needs nginx's njs module ($NJS_MODULE): apt-get install -y libnginx-mod-http-js"
    fi
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"

# 10,000 idle connections need file descriptors (children inherit this limit).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n); [ "$NOFILE" = unlimited ] && NOFILE=65536
if [ "$NOFILE" -lt $((IDLE_CONNS + 1000)) ] && want idle-10k; then
    log "WARNING: open-file limit $NOFILE is low for IDLE_CONNS=$IDLE_CONNS"
fi

# ---------------------------------------------------------------- build
# EDGE_BIN: measure a binary built elsewhere (another commit, for a before/after).
EDGE_BIN_GIVEN="${EDGE_BIN:-}"
EDGE_BIN="${EDGE_BIN:-$ROOT/target/release/edge}"
WASM_DIR="$ROOT/examples/target/wasm32-wasip2/release"
# The example hooks the scenarios upload (hook-1k, hooks4-1k).
HOOKS="bluegreen header-router security-headers"
BUILD_S=0
if [ "$SKIP_BUILD" != 1 ]; then
    if [ -z "$EDGE_BIN_GIVEN" ]; then
        log "building edge (cargo build --release -p edge)"
        cargo build --release -p edge --manifest-path "$ROOT/Cargo.toml" >&2
    fi
    # From the examples folder, so its .cargo/config.toml (64 KiB guest stack)
    # applies; each hook alone, so `bluegreen` gets the SDK without `std`.
    log "building the example hooks (wasm32-wasip2)"
    for h in $HOOKS; do
        (cd "$ROOT/examples" && cargo build --release --locked --target wasm32-wasip2 -p "$h" >&2)
    done
    BUILD_S=$(( $(date +%s) - T_START ))
fi
[ -x "$EDGE_BIN" ] || die "$EDGE_BIN not built"
for h in $HOOKS; do
    [ -f "$WASM_DIR/${h//-/_}.wasm" ] || die "$WASM_DIR/${h//-/_}.wasm not built"
done
# Run a copy, so a rebuild in the work tree during the run changes nothing.
mkdir -p "$BENCH_DIR/bin"; chmod 755 "$BENCH_DIR"
cp "$EDGE_BIN" "$BENCH_DIR/bin/edge"; EDGE_BIN="$BENCH_DIR/bin/edge"
for h in $HOOKS; do cp "$WASM_DIR/${h//-/_}.wasm" "$BENCH_DIR/bin/"; done
WASM_DIR="$BENCH_DIR/bin"

# ---------------------------------------------------------------- process bookkeeping
EDGE_PID=""; IDLE_PID=""; CHURN_PID=""; HOSTILE_PID=""
pidfile_of() {
    case $1 in
        varnish) echo "$BENCH_DIR/varnish/varnishd.pid";;
        haproxy) echo "$BENCH_DIR/haproxy/haproxy.pid";;
        *)       echo "$BENCH_DIR/$1/nginx.pid";;
    esac
}
# Running (a daemon's zombie waiting for init to reap it counts as gone).
alive() { local st; st=$(awk '{sub(/^.*\) /,""); print $1}' "/proc/$1/stat" 2>/dev/null) || return 1
          [ -n "$st" ] && [ "$st" != Z ]; }
pid_from_file() { [ -f "$1" ] && head -n1 "$1" | tr -dc '0-9'; true; }
# Stops the process a pid file names, only if it is still the program we started.
stop_pidfile() { # pidfile expected-exe
    local f=$1 exe=$2 pid i
    [ -f "$f" ] || return 0
    pid=$(pid_from_file "$f")
    if [ -n "$pid" ] && [ -d "/proc/$pid" ] &&
        [ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)")" = "$exe" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 100); do alive "$pid" || break; sleep 0.05; done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$f"
}
stop_pid() { # pid
    local pid=$1 i
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 300); do alive "$pid" || break; sleep 0.05; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}
stop_peer() {
    case $1 in
        varnish) stop_pidfile "$(pidfile_of varnish)" varnishd;;
        haproxy) stop_pidfile "$(pidfile_of haproxy)" haproxy;;
        *)       stop_pidfile "$(pidfile_of "$1")" nginx;;
    esac
}
stop_edge() { stop_pid "$EDGE_PID"; EDGE_PID=""; }
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    [ -n "$CHURN_PID" ] && { touch "$BENCH_DIR/churn.stop" 2>/dev/null; stop_pid "$CHURN_PID"; }
    [ -n "$IDLE_PID" ] && stop_pid "$IDLE_PID"
    [ -n "$HOSTILE_PID" ] && stop_pid "$HOSTILE_PID"
    stop_edge
    for p in nginx-cache nginx-pass nginx-njs varnish haproxy origin; do stop_peer "$p"; done
    [ $rc = 0 ] || log "stopped everything after an error (exit $rc); logs in $BENCH_DIR"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    local i; for i in $(seq 1 200); do port_busy "$1" && return 0; sleep 0.05; done
    die "nothing listening on 127.0.0.1:$1 after 10 s"
}
need_free_port() { ! port_busy "$1" || die "port $1 is already in use (not by this suite)"; }

# Every process whose CPU and memory count for a contender: the main pid and all
# its descendants.
tree_pids() { local c; echo "$1"; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree_pids "$c"; done; }
main_pid() { case $1 in edge|edge-*) echo "$EDGE_PID";; *) pid_from_file "$(pidfile_of "$1")";; esac; }
pids_of() { local p; p=$(main_pid "$1"); [ -n "$p" ] && tree_pids "$p"; true; }
ticks() {
    local t=0 p v
    for p in $(pids_of "$1"); do
        v=$(awk '{sub(/^.*\) /,""); print $12+$13}' "/proc/$p/stat" 2>/dev/null) || continue
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
status_kb() { # contender field -> sum over its processes, KiB
    local t=0 p v
    for p in $(pids_of "$1"); do
        v=$(awk -v f="$2:" '$1==f{print $2}' "/proc/$p/status" 2>/dev/null) || continue
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
rss_kb() { status_kb "$1" VmRSS; }
# Busy ticks of the whole machine (all CPUs; idle and iowait left out).
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
# utime+stime of this shell's finished children (wrk, curl, awk), in ticks, from the
# `times` builtin's output (it must run in this shell, not a $(...) subshell).
times_ticks() { awk -v hz="$HZ" 'NR==2 { t=0; for (i=1;i<=2;i++) { split($i, a, /[ms]/); t+=a[1]*60+a[2] } printf "%.0f", t*hz }' "$1"; }
hwm_kb() { status_kb "$1" VmHWM; }
# Open file descriptors, summed over the contender's processes.
fds_of() {
    local t=0 p
    for p in $(pids_of "$1"); do t=$((t + $(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l))); done
    echo "$t"
}

# Raw results: one record a line, "kind<TAB>key=value<TAB>...", read by bench/report.py.
RAW="$BENCH_DIR/raw.tsv"
rec() { local IFS=$'\t'; echo "$*" >> "$RAW"; }

# Waits (up to QUIET_WAIT s, QUIET_BUDGET s over the whole suite) until other processes
# use less than QUIET_PCT % of a core.
wait_quiet() {
    [ "$QUIET_WAIT" -gt 0 ] || return 0
    local start b0 b1 k0 k1 pct said=""
    start=$(date +%s)
    while :; do
        times > "$BENCH_DIR/times.q0"; b0=$(busy_ticks); sleep 1; b1=$(busy_ticks); times > "$BENCH_DIR/times.q1"
        k0=$(times_ticks "$BENCH_DIR/times.q0"); k1=$(times_ticks "$BENCH_DIR/times.q1")
        pct=$(( 100 * (b1 - b0 - (k1 - k0)) / HZ ))
        if [ "$pct" -lt "$QUIET_PCT" ]; then
            [ -n "$said" ] && log "  machine quiet ($pct%)"
            break
        fi
        if [ $(( $(date +%s) - start )) -ge "$QUIET_WAIT" ] ||
            [ $(( QUIET_SPENT + $(date +%s) - start )) -ge "$QUIET_BUDGET" ]; then
            log "  machine still busy (other processes: $pct% of a core); measuring anyway"
            break
        fi
        [ -n "$said" ] || log "  waiting for a quiet machine (other processes: $pct% of a core)"
        said=1
    done
    QUIET_SPENT=$(( QUIET_SPENT + $(date +%s) - start - 1 ))
}

# ---------------------------------------------------------------- peers
render() { # template name port workers -> stdout
    sed -e "s|@RUN@|$BENCH_DIR|g" -e "s|@NAME@|$2|g" -e "s|@PORT@|$3|g" \
        -e "s|@WORKERS@|$4|g" -e "s|@ORIGIN@|$ORIGIN|g" \
        -e "s|@ORIGIN_HOST@|127.0.0.1|g" -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" \
        -e "s|@NOFILE@|$NOFILE|g" -e "s|@MAXCONN@|$((IDLE_CONNS + 2000))|g" \
        "$HERE/peers/$1"
}
start_nginx() { # name template port workers
    local name=$1 tpl=$2 port=$3 workers=$4 d="$BENCH_DIR/$1"
    need_free_port "$port"
    rm -rf "$d"; mkdir -p "$d/tmp"; chmod 755 "$d"
    render "$tpl" "$name" "$port" "$workers" > "$d/nginx.conf"
    [ "$name" = nginx-njs ] && cp "$HERE/peers/bluegreen.js" "$d/"
    nginx -q -t -e "$d/error.log" -p "$d" -c "$d/nginx.conf" >&2 || die "$name: nginx -t failed"
    nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" || die "$name: nginx did not start"
    wait_port "$port"
}
start_varnish() {
    local d="$BENCH_DIR/varnish"
    need_free_port "$VARNISH_PORT"
    rm -rf "$d"; mkdir -p "$d"; chmod 755 "$d"
    render varnish.vcl varnish "$VARNISH_PORT" 1 > "$d/default.vcl"; chmod 644 "$d/default.vcl"
    # malloc storage; default thread pools (a thread per active connection, so it
    # cannot be held to WORKERS); idle keep-alive connections kept for 120 s.
    varnishd -a "127.0.0.1:$VARNISH_PORT" -f "$d/default.vcl" -n "$d/inst" -s malloc,256m \
        -P "$d/varnishd.pid" -T none -p default_ttl=60 -p timeout_idle=120 >"$d/varnishd.log" 2>&1 || {
        cat "$d/varnishd.log" >&2; die "varnishd did not start"; }
    wait_port "$VARNISH_PORT"
}
start_haproxy() { # threads
    local d="$BENCH_DIR/haproxy"
    need_free_port "$HAPROXY_PORT"
    rm -rf "$d"; mkdir -p "$d"
    render haproxy.cfg haproxy "$HAPROXY_PORT" "$1" > "$d/haproxy.cfg"
    haproxy -q -c -f "$d/haproxy.cfg" >"$d/haproxy.log" 2>&1 || { cat "$d/haproxy.log" >&2; die "haproxy config"; }
    haproxy -D -f "$d/haproxy.cfg" -p "$d/haproxy.pid" >>"$d/haproxy.log" 2>&1 || {
        cat "$d/haproxy.log" >&2; die "haproxy did not start"; }
    wait_port "$HAPROXY_PORT"
}

# ---------------------------------------------------------------- edge
api() { # curl args... (fails on HTTP errors)
    curl -sS -f -H "authorization: Bearer $TOKEN" "$@"
}
EDGE_D="$BENCH_DIR/edge"
EDGE_EXTRA=()  # more `edge serve` flags (hit-100k-disk)
start_edge() { # workers
    need_free_port "$EDGE_PORT"; need_free_port "$CONTROL_PORT"; need_free_port "$EDGE_TLS_PORT"
    rm -rf "$EDGE_D"; mkdir -p "$EDGE_D/certs"
    # A self-signed certificate for the TLS listener (hostile-10k's TLS connections).
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=hit.bench.test \
        -addext subjectAltName=DNS:hit.bench.test -keyout "$EDGE_D/key.pem" -out "$EDGE_D/cert.pem" 2>/dev/null ||
        die "openssl could not make a certificate"
    cat "$EDGE_D/cert.pem" "$EDGE_D/key.pem" > "$EDGE_D/certs/hit.pem"
    RUST_LOG=warn "$EDGE_BIN" serve --data-dir "$EDGE_D/data" --listen "127.0.0.1:$EDGE_PORT" \
        --tls-listen "127.0.0.1:$EDGE_TLS_PORT" --tls-cert-dir "$EDGE_D/certs" \
        --control "127.0.0.1:$CONTROL_PORT" --token "$TOKEN" --workers "$1" "${EDGE_EXTRA[@]}" >"$EDGE_D/edge.log" 2>&1 &
    EDGE_PID=$!
    local i
    for i in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$CONTROL_PORT/healthz" >/dev/null 2>&1 && return 0
        [ -d "/proc/$EDGE_PID" ] || break
        sleep 0.05
    done
    cat "$EDGE_D/edge.log" >&2
    die "edge did not come up"
}
origin_json() { printf '{"id":"%s","domain_name":"%s","protocol":"http"}' "$1" "$ORIGIN"; }
# The distribution configs, by name. Each answers on <name>.bench.test.
dist_config() { # name [comment]
    local comment=${2:-$1}
    case $1 in
        hit) printf '{"comment":"%s","aliases":["hit.bench.test"],"origins":[%s],"default_cache_behavior":{"target_origin_id":"origin","compress":false}}' \
                "$comment" "$(origin_json origin)";;
        # hit-gzip-10k: compress on (a new distribution's default).
        gzip) printf '{"comment":"%s","aliases":["gzip.bench.test"],"origins":[%s],"default_cache_behavior":{"target_origin_id":"origin","compress":true}}' \
                "$comment" "$(origin_json origin)";;
        # TTLs all 0: nothing is fresh. (The origin sends no validators, so nothing is
        # kept stale for revalidation either: every request goes to the origin.)
        pass) printf '{"comment":"%s","aliases":["pass.bench.test"],"origins":[%s],"default_cache_behavior":{"target_origin_id":"origin","compress":false,"min_ttl":0,"default_ttl":0,"max_ttl":0}}' \
                "$comment" "$(origin_json origin)";;
        hook) printf '{"comment":"%s","aliases":["hook.bench.test"],"origins":[%s,%s],"default_cache_behavior":{"target_origin_id":"blue","compress":false,"hooks":{"viewer_request":{"module":"bluegreen"}}}}' \
                "$comment" "$(origin_json blue)" "$(origin_json green)";;
        # bluegreen on both viewer events, green's share from its own KV namespace (50 %).
        bluegreen) printf '{"comment":"%s","aliases":["bluegreen.bench.test"],"origins":[%s,%s],"default_cache_behavior":{"target_origin_id":"blue","compress":false,"hooks":{"viewer_request":{"module":"bluegreen","config":{"kv_namespace":"bg50"}},"viewer_response":{"module":"bluegreen","config":{"kv_namespace":"bg50"}}}}}' \
                "$comment" "$(origin_json blue)" "$(origin_json green)";;
        hooks4) printf '{"comment":"%s","aliases":["hooks4.bench.test"],"origins":[%s,%s],"default_cache_behavior":{"target_origin_id":"blue","compress":false,"hooks":{"viewer_request":{"module":"bluegreen"},"origin_request":{"module":"header-router"},"origin_response":{"module":"security-headers"},"viewer_response":{"module":"security-headers"}}}}' \
                "$comment" "$(origin_json blue)" "$(origin_json green)";;
    esac
}
declare -A DIST_ID DIST_ETAG
configure_edge() {
    local h name out
    for h in $HOOKS; do
        api -X PUT --data-binary "@$WASM_DIR/${h//-/_}.wasm" "http://127.0.0.1:$CONTROL_PORT/v1/hooks/$h" >/dev/null
    done
    api -X PUT --data-binary 50 "http://127.0.0.1:$CONTROL_PORT/v1/kv/bg50/green_weight" >/dev/null
    for name in hit gzip pass hook hooks4 bluegreen; do
        out=$(api -D "$EDGE_D/create-$name.hdr" -X POST -H 'content-type: application/json' \
            -d "$(dist_config "$name")" "http://127.0.0.1:$CONTROL_PORT/v1/distributions")
        DIST_ID[$name]=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$out")
        DIST_ETAG[$name]=$(tr -d '\r' < "$EDGE_D/create-$name.hdr" | awk -F': ' 'tolower($1)=="etag"{print $2}')
    done
}
edge_cache_counts() { # -> "hit miss refreshhit error"
    curl -sf "http://127.0.0.1:$CONTROL_PORT/metrics" | awk '
        /^edge_requests_total\{cache="Hit"\}/ {h=$2} /^edge_requests_total\{cache="Miss"\}/ {m=$2}
        /^edge_requests_total\{cache="RefreshHit"\}/ {r=$2} /^edge_requests_total\{cache="Error"\}/ {e=$2}
        END {printf "%d %d %d %d\n", h, m, r, e}'
}

# ---------------------------------------------------------------- checks
header_of() { # header host url [extra curl args] -> value of the header in the response
    local name=$1 host=$2 url=$3; shift 3
    curl -sS -o /dev/null -D - -H "Host: $host" "$@" "$url" | tr -d '\r' |
        awk -F': ' -v n="$name" 'tolower($1)==n{print $2}'
}
probe_count() { wc -l < "$BENCH_DIR/origin/probe.log" 2>/dev/null || echo 0; }
# A cache contender must answer from its cache: warm, then look at the second answer.
check_hit() { # contender host url
    local who=$1 host=$2 url=$3 v
    curl -sS -o /dev/null -H "Host: $host" "$url"
    case $who in
        edge*) v=$(header_of x-cache "$host" "$url"); [ "$v" = "Hit from edge" ] ||
            die "$who ($host) does not answer $url from its cache (x-cache: $v)";;
        nginx-cache|nginx-njs) v=$(header_of x-cache-status "$host" "$url"); [ "$v" = HIT ] ||
            die "$who does not answer $url from its cache (X-Cache-Status: $v)";;
        varnish) v=$(header_of x-varnish "$host" "$url"); [[ "$v" == *" "* ]] ||
            die "varnish does not answer $url from its cache (X-Varnish: $v)";;
    esac
}
# The bluegreen routing caches each arm apart: fill both (a viewer with each cookie),
# so a fresh viewer hits whichever arm it draws.
warm_arms() { # contender host url
    local arm
    for arm in blue green; do
        curl -sS -o /dev/null -H "Host: $2" -H "Cookie: deployment=$arm" "$3"
        curl -sS -o /dev/null -H "Host: $2" -H "Cookie: deployment=$arm" "$3"
    done
}
# A fresh viewer (no cookie) gets a sticky cookie for the arm it drew, and both arms
# are drawn (green's share is 50 %).
check_fresh_viewer() { # contender host url
    local who=$1 host=$2 url=$3 i c seen=""
    for i in $(seq 1 40); do
        c=$(header_of set-cookie "$host" "$url")
        case $c in
            deployment=blue\;*|deployment=green\;*) seen="$seen ${c%%;*}";;
            *) die "$who ($host) set no deployment cookie for a fresh viewer (set-cookie: '$c')";;
        esac
    done
    [[ "$seen" == *deployment=blue* && "$seen" == *deployment=green* ]] ||
        die "$who ($host) drew one arm only in 40 fresh viewers:$seen"
    [ -z "$(header_of set-cookie "$host" "$url" -H 'Cookie: deployment=green')" ] ||
        die "$who ($host) set a cookie for a viewer that had one"
}
# A pass-through contender must send every request to the origin: two probes in a
# row both reach it (and edge says Miss both times).
check_pass() { # contender host url
    local who=$1 host=$2 url=$3 n0 n1 x1 x2
    n0=$(probe_count)
    x1=$(header_of x-cache "$host" "$url" -H "X-Bench-Probe: 1")
    x2=$(header_of x-cache "$host" "$url" -H "X-Bench-Probe: 1")
    sleep 0.2; n1=$(probe_count)
    if [ "$who" = edge ] && { [ "$x1" != "Miss from edge" ] || [ "$x2" != "Miss from edge" ]; }; then
        die "edge pass-through is not a pass: x-cache '$x1' then '$x2' for $url"
    fi
    [ $((n1 - n0)) = 2 ] || die "$who: the origin saw $((n1 - n0)) of 2 requests for $url"
}

# ---------------------------------------------------------------- measurements
parse_wrk() { # wrk --latency output -> "rps p50_us p99_us requests errors"
    awk 'function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1000000; return v+0 }
         / requests in / { n=$1 } /Requests\/sec:/ { rps=$2 } $1=="50%" { p50=us($2) } $1=="99%" { p99=us($2) }
         /Socket errors:/ { e=$4+$6+$8+$10; err+=e } /Non-2xx/ { err+=$NF }
         END { printf "%s %.0f %.0f %d %d\n", rps, p50, p99, n, err+0 }'
}
# Warm-up, then RUNS wrk runs; one "run" record each, then one "rss" record.
measure() { # pass scenario contender port host path
    local pass=$1 sc=$2 who=$3 port=$4 host=$5 path=$6 r t0 t1 rps p50 p99 n err cpu attempt
    local url="http://127.0.0.1:$port$path" h0 m0 r0 e0 h1 m1 r1 e1 o0 o1 k0 k1 b0 b1 other
    log "pass $pass  $sc  $who: warm-up $WARMUP, $RUNS x $DURATION"
    wait_quiet
    local extra=(); [ -n "${MEASURE_HEADER:-}" ] && extra=(-H "$MEASURE_HEADER")
    wrk -t1 -c"$CONNS" -d"$WARMUP" -H "Host: $host" "${extra[@]}" "$url" >/dev/null
    for r in $(seq 1 "$RUNS"); do
        attempt=0
        while :; do
            [ "$r" = 1 ] && [ "$attempt" = 0 ] || wait_quiet
            h0=0 m0=0 r0=0 e0=0 h1=0 m1=0 r1=0 e1=0
            [[ $who == edge* ]] && read -r h0 m0 r0 e0 < <(edge_cache_counts)
            o0=$(ticks origin); times > "$BENCH_DIR/times.0"; b0=$(busy_ticks)
            t0=$(ticks "$who")
            wrk -t1 -c"$CONNS" -d"$DURATION" --latency -H "Host: $host" "${extra[@]}" "$url" > "$BENCH_DIR/wrk.out"
            t1=$(ticks "$who")
            b1=$(busy_ticks); times > "$BENCH_DIR/times.1"; o1=$(ticks origin)
            k0=$(times_ticks "$BENCH_DIR/times.0"); k1=$(times_ticks "$BENCH_DIR/times.1")
            read -r rps p50 p99 n err < <(parse_wrk < "$BENCH_DIR/wrk.out")
            # CPU used by everything else on the machine (not the server, the origin or
            # wrk), in % of one core: other work here makes the numbers noisy.
            other=$(awk -v b=$((b1 - b0)) -v s=$((t1 - t0)) -v o=$((o1 - o0)) -v k=$((k1 - k0)) -v hz="$HZ" -v d="${DURATION%s}" \
                'BEGIN { x = b - s - o - k; if (x < 0) x = 0; printf "%.0f", 100 * x / hz / d }')
            [[ $who == edge* ]] && read -r h1 m1 r1 e1 < <(edge_cache_counts)
            cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.2f", (n > 0 ? t / hz * 1e6 / n : 0) }')
            if [ "$other" -gt "$RUN_OTHER_MAX" ] && [ "$attempt" -lt "$RUN_RETRIES" ] &&
                [ "$QUIET_SPENT" -lt "$QUIET_BUDGET" ]; then
                log "  run $r: other processes used ${other}% of a core meanwhile ($rps req/s); repeating it"
                attempt=$((attempt + 1)); RUNS_REPEATED=$((RUNS_REPEATED + 1))
                QUIET_SPENT=$((QUIET_SPENT + ${DURATION%s}))  # repeats count against the budget too
                continue
            fi
            break
        done
        rec run "pass=$pass" "scenario=$sc" "contender=$who" "run=$r" "rps=$rps" "p50=$p50" "p99=$p99" \
            "requests=$n" "errors=$err" "cpu=$cpu" "ticks=$((t1 - t0))" "other_pct=$other" "repeats=$attempt" \
            "hit=$((h1 - h0))" "miss=$((m1 - m0))" "refreshhit=$((r1 - r0))" "error=$((e1 - e0))"
        log "  run $r: $rps req/s, p50 ${p50}us, p99 ${p99}us, ${cpu} us CPU/req, errors $err, other load ${other}%$(
            [[ $who == edge* ]] && echo ", x-cache Hit $((h1 - h0)) Miss $((m1 - m0)) RefreshHit $((r1 - r0)) Error $((e1 - e0))")"
    done
    rec rss "pass=$pass" "scenario=$sc" "contender=$who" "rss_kb=$(rss_kb "$who")"
}

# churn: the edge hit-1k measurement with a config PUT (new comment, If-Match) every second.
churn_loop() { # id etag statefile stopfile
    local id=$1 etag=$2 state=$3 stop=$4 n=0 ok=0 bad=0 code hdr="$EDGE_D/churn.hdr"
    while [ ! -f "$stop" ]; do
        n=$((n + 1))
        code=$(curl -sS -o /dev/null -D "$hdr" -w '%{http_code}' -X PUT \
            -H "authorization: Bearer $TOKEN" -H "If-Match: $etag" -H 'content-type: application/json' \
            -d "$(dist_config hit "churn $n")" \
            "http://127.0.0.1:$CONTROL_PORT/v1/distributions/$id/config" 2>/dev/null) || code=000
        if [ "$code" = 200 ]; then
            ok=$((ok + 1)); etag=$(tr -d '\r' < "$hdr" | awk -F': ' 'tolower($1)=="etag"{print $2}')
        else
            bad=$((bad + 1))
        fi
        echo "$ok $bad $etag" > "$state"
        sleep 1
    done
}

# stream-1g: one 1 GiB object through the contender, curl to /dev/null.
stream_1g() { # pass contender port host
    local pass=$1 who=$2 port=$3 host=$4 h0 h1 t0 t1 out code size secs speed
    log "pass $pass  stream-1g  $who"
    wait_quiet
    h0=$(hwm_kb "$who"); t0=$(ticks "$who")
    out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total} %{speed_download}' \
        -H "Host: $host" "http://127.0.0.1:$port/1g.bin")
    t1=$(ticks "$who"); h1=$(hwm_kb "$who")
    read -r code size secs speed <<<"$out"
    [ "$code" = 200 ] && [ "$size" = 1073741824 ] || log "WARNING: $who stream-1g got HTTP $code, $size bytes"
    rec stream "pass=$pass" "contender=$who" "code=$code" "bytes=$size" "seconds=$secs" "speed=$speed" \
        "hwm_before_kb=$h0" "hwm_after_kb=$h1" "rss_after_kb=$(rss_kb "$who")" "ticks=$((t1 - t0))"
    log "  $(awk -v b="$size" -v s="$secs" 'BEGIN{printf "%.0f MiB/s", b/1048576/s}'), VmHWM $((h0 / 1024)) -> $((h1 / 1024)) MiB"
}

# idle-10k: RSS before, and with IDLE_CONNS idle keep-alive connections that each sent one request.
idle_conns() { # pass contender port host
    local pass=$1 who=$2 port=$3 host=$4 r0 r1 fifo="$BENCH_DIR/idle.in" out="$BENCH_DIR/idle.out" i ready open
    log "pass $pass  idle-10k  $who: $IDLE_CONNS connections"
    sleep 1; r0=$(rss_kb "$who")
    rm -f "$fifo" "$out"; mkfifo "$fifo"
    python3 "$HERE/idle_conns.py" --port "$port" --host-header "$host" --path /1k.html \
        --conns "$IDLE_CONNS" < "$fifo" > "$out" 2>"$BENCH_DIR/idle.err" &
    IDLE_PID=$!
    exec 7> "$fifo"
    ready=""
    for i in $(seq 1 1200); do
        ready=$(grep '^READY' "$out" 2>/dev/null || true)
        [ -n "$ready" ] && break
        [ -d "/proc/$IDLE_PID" ] || break
        sleep 0.1
    done
    [ -n "$ready" ] || { exec 7>&-; cat "$BENCH_DIR/idle.err" >&2; die "idle client did not get ready"; }
    sleep 2
    r1=$(rss_kb "$who")
    echo go >&7; exec 7>&-
    wait "$IDLE_PID" || true; IDLE_PID=""
    open=$(awk '/^OPEN/{print $2}' "$out")
    # READY ok=N failed=M seconds=S
    rec idle "pass=$pass" "contender=$who" "rss_before_kb=$r0" "rss_after_kb=$r1" "conns=$IDLE_CONNS" \
        "$(echo "$ready" | awk '{print $2}')" "$(echo "$ready" | awk '{print $3}')" "open=${open:-0}" \
        "$(echo "$ready" | awk '{print $4}')"
    log "  RSS $((r0 / 1024)) -> $((r1 / 1024)) MiB; $ready; still open after measuring: ${open:-?}"
    [ -s "$BENCH_DIR/idle.err" ] && log "  client: $(head -c 300 "$BENCH_DIR/idle.err")"
    sleep 1
}

# hostile-10k: hit-1k measured, then measured again while HOSTILE_CONNS hostile connections
# are held open (bench/hostile_conns.py reopens each one the server closes).
hostile() { # pass contender port host [tls-port]
    local pass=$1 who=$2 port=$3 host=$4 tls=${5:-} fifo="$BENCH_DIR/hostile.in" out="$BENCH_DIR/hostile.out"
    local i ready held f0 f1 r0 r1
    measure "$pass" hostile-base "$who" "$port" "$host" /1k.html
    f0=$(fds_of "$who"); r0=$(rss_kb "$who")
    log "pass $pass  hostile-10k  $who: $HOSTILE_CONNS hostile connections"
    rm -f "$fifo" "$out"; mkfifo "$fifo"
    python3 "$HERE/hostile_conns.py" --port "$port" ${tls:+--tls-port "$tls"} --host-header "$host" \
        --conns "$HOSTILE_CONNS" < "$fifo" > "$out" 2>"$BENCH_DIR/hostile.err" &
    HOSTILE_PID=$!
    exec 8> "$fifo"
    ready=""
    for i in $(seq 1 3000); do
        ready=$(grep '^READY' "$out" 2>/dev/null || true)
        [ -n "$ready" ] && break
        [ -d "/proc/$HOSTILE_PID" ] || break
        sleep 0.1
    done
    [ -n "$ready" ] || { exec 8>&-; cat "$BENCH_DIR/hostile.err" >&2; die "hostile client did not get ready"; }
    log "  $ready"
    QUIET_WAIT_SAVED=$QUIET_WAIT; QUIET_WAIT=0  # the hostile client is the load here
    measure "$pass" hostile-10k "$who" "$port" "$host" /1k.html
    QUIET_WAIT=$QUIET_WAIT_SAVED
    f1=$(fds_of "$who"); r1=$(rss_kb "$who")
    echo go >&8; exec 8>&-
    for i in $(seq 1 100); do grep -q '^HELD' "$out" 2>/dev/null && break; sleep 0.1; done
    held=$(grep '^HELD' "$out" || true)
    wait "$HOSTILE_PID" || true; HOSTILE_PID=""
    # READY open=N failed=M seconds=S; HELD open=N reopened=R by_shape=...
    rec hostile "pass=$pass" "contender=$who" "conns=$HOSTILE_CONNS" "fds_before=$f0" "fds_during=$f1" \
        "rss_before_kb=$r0" "rss_during_kb=$r1" "$(echo "$ready" | awk '{print $2}' | sed 's/^open=/ready_open=/')" \
        "$(echo "$held" | awk '{print $2}')" "$(echo "$held" | awk '{print $3}')" "$(echo "$held" | awk '{print $4}')"
    log "  descriptors $f0 -> $f1, RSS $((r0 / 1024)) -> $((r1 / 1024)) MiB; $held"
    [ -s "$BENCH_DIR/hostile.err" ] && log "  client: $(head -c 300 "$BENCH_DIR/hostile.err")"
    sleep 2
}

# ---------------------------------------------------------------- one pass
run_pass() { # pass
    local pass=$1 workers nginx_workers
    case $pass in
        1) workers=1; nginx_workers=1;;
        all) workers=$NPROC; nginx_workers=auto;;
        *) workers=$pass; nginx_workers=$pass;;
    esac
    log "=== pass '$pass': every server on $workers worker(s)"
    rec pass "pass=$pass" "workers=$workers"
    start_nginx nginx-cache nginx-cache.conf "$NGINX_CACHE_PORT" "$nginx_workers"
    start_nginx nginx-pass nginx-pass.conf "$NGINX_PASS_PORT" "$nginx_workers"
    start_varnish
    start_haproxy "$workers"
    want bluegreen-1k && start_nginx nginx-njs nginx-njs.conf "$NGINX_NJS_PORT" "$nginx_workers"
    start_edge "$workers"
    configure_edge
    local e="http://127.0.0.1:$EDGE_PORT" obj sc
    # Fill every cache, then take edge's idle RSS (no viewer connections).
    for obj in 1k.html 100k.html; do
        for sc in hit hook hooks4; do curl -sS -o /dev/null -H "Host: $sc.bench.test" "$e/$obj"; done
        warm_arms edge bluegreen.bench.test "$e/$obj"
        curl -sS -o /dev/null "http://127.0.0.1:$NGINX_CACHE_PORT/$obj"
        curl -sS -o /dev/null "http://127.0.0.1:$VARNISH_PORT/$obj"
    done
    sleep 1
    rec edge_idle "pass=$pass" "rss_kb=$(rss_kb edge)" "when=started"
    log "edge RSS after start and configuration: $(( $(rss_kb edge) / 1024 )) MiB"

    for sc in $ALL_SCENARIOS; do
        want "$sc" || continue
        case $sc in
            hit-1k|hit-100k)
                obj=/${sc#hit-}.html
                check_hit edge hit.bench.test "$e$obj"
                measure "$pass" "$sc" edge "$EDGE_PORT" hit.bench.test "$obj"
                check_hit nginx-cache bench.test "http://127.0.0.1:$NGINX_CACHE_PORT$obj"
                measure "$pass" "$sc" nginx-cache "$NGINX_CACHE_PORT" bench.test "$obj"
                check_hit varnish bench.test "http://127.0.0.1:$VARNISH_PORT$obj"
                measure "$pass" "$sc" varnish "$VARNISH_PORT" bench.test "$obj";;
            hit-100k-disk)
                stop_edge
                rm -rf "$BENCH_DIR/edge-cache"
                EDGE_EXTRA=(--cache-dir "$BENCH_DIR/edge-cache" --cache-bytes 65536)
                start_edge "$workers"; configure_edge
                curl -sS -o /dev/null -H "Host: hit.bench.test" "$e/100k.html"
                sleep 1
                check_hit edge hit.bench.test "$e/100k.html"
                curl -sf "http://127.0.0.1:$CONTROL_PORT/metrics" | grep -q '^edge_cache_disk_hits_total [1-9]' ||
                    die "edge did not answer /100k.html from its disk tier"
                measure "$pass" "$sc" edge "$EDGE_PORT" hit.bench.test /100k.html
                check_hit nginx-cache bench.test "http://127.0.0.1:$NGINX_CACHE_PORT/100k.html"
                measure "$pass" "$sc" nginx-cache "$NGINX_CACHE_PORT" bench.test /100k.html
                log "  edge disk tier: $(curl -sf "http://127.0.0.1:$CONTROL_PORT/metrics" | awk '/^edge_cache_disk_(hits|corrupt)_total/ {printf "%s=%s ", $1, $2}')"
                stop_edge
                EDGE_EXTRA=()
                start_edge "$workers"; configure_edge
                for obj in 1k.html 100k.html; do
                    for sc in hit hook hooks4; do curl -sS -o /dev/null -H "Host: $sc.bench.test" "$e/$obj"; done
        warm_arms edge bluegreen.bench.test "$e/$obj"
                done
                sc=hit-100k-disk;;
            hit-gzip-10k)
                local browser="Accept-Encoding: gzip, deflate, br, zstd" enc
                curl -sS -o /dev/null -H "Host: gzip.bench.test" -H "$browser" "$e/10k.html"
                enc=$(header_of content-encoding gzip.bench.test "$e/10k.html" -H "$browser")
                [ "$enc" = br ] || die "edge does not answer /10k.html in brotli (content-encoding: '$enc')"
                [ "$(header_of x-cache gzip.bench.test "$e/10k.html" -H "$browser")" = "Hit from edge" ] ||
                    die "edge does not answer the compressed /10k.html from its cache"
                MEASURE_HEADER="$browser" measure "$pass" "$sc" edge "$EDGE_PORT" gzip.bench.test /10k.html
                local n="http://127.0.0.1:$NGINX_CACHE_PORT/10k.html"
                curl -sS -o /dev/null -H "$browser" "$n"
                enc=$(header_of content-encoding bench.test "$n" -H "$browser")
                [ "$enc" = gzip ] || die "nginx-cache does not answer /10k.html in gzip (content-encoding: '$enc')"
                [ "$(header_of x-cache-status bench.test "$n" -H "$browser")" = HIT ] ||
                    die "nginx-cache does not answer /10k.html from its cache"
                MEASURE_HEADER="$browser" measure "$pass" "$sc" nginx-cache "$NGINX_CACHE_PORT" bench.test /10k.html;;
            pass-1k|pass-100k)
                obj=/${sc#pass-}.html
                check_pass edge pass.bench.test "$e$obj"
                measure "$pass" "$sc" edge "$EDGE_PORT" pass.bench.test "$obj"
                check_pass nginx-pass bench.test "http://127.0.0.1:$NGINX_PASS_PORT$obj"
                measure "$pass" "$sc" nginx-pass "$NGINX_PASS_PORT" bench.test "$obj"
                check_pass haproxy bench.test "http://127.0.0.1:$HAPROXY_PORT$obj"
                measure "$pass" "$sc" haproxy "$HAPROXY_PORT" bench.test "$obj";;
            hook-1k)
                check_hit edge hook.bench.test "$e/1k.html"
                measure "$pass" "$sc" edge "$EDGE_PORT" hook.bench.test /1k.html;;
            hooks4-1k)
                check_hit edge hooks4.bench.test "$e/1k.html"
                [ -n "$(header_of strict-transport-security hooks4.bench.test "$e/1k.html")" ] ||
                    die "hooks4: the viewer_response hook (security-headers) did not run"
                measure "$pass" "$sc" edge "$EDGE_PORT" hooks4.bench.test /1k.html;;
            bluegreen-1k)
                local njs="http://127.0.0.1:$NGINX_NJS_PORT/1k.html"
                # Both arms filled now: what the fill above stored may be stale by now.
                warm_arms edge bluegreen.bench.test "$e/1k.html"
                warm_arms nginx-njs bench.test "$njs"
                check_hit edge bluegreen.bench.test "$e/1k.html"
                check_fresh_viewer edge bluegreen.bench.test "$e/1k.html"
                measure "$pass" "$sc" edge "$EDGE_PORT" bluegreen.bench.test /1k.html
                check_hit nginx-njs bench.test "$njs"
                check_fresh_viewer nginx-njs bench.test "$njs"
                measure "$pass" "$sc" nginx-njs "$NGINX_NJS_PORT" bench.test /1k.html;;
            churn)
                check_hit edge hit.bench.test "$e/1k.html"
                local state="$EDGE_D/churn.state" stop="$BENCH_DIR/churn.stop" ok bad etag
                rm -f "$stop"; echo "0 0 ${DIST_ETAG[hit]}" > "$state"
                churn_loop "${DIST_ID[hit]}" "${DIST_ETAG[hit]}" "$state" "$stop" &
                CHURN_PID=$!
                measure "$pass" churn edge "$EDGE_PORT" hit.bench.test /1k.html
                touch "$stop"; wait "$CHURN_PID" 2>/dev/null || true; CHURN_PID=""
                read -r ok bad etag < "$state"; DIST_ETAG[hit]=$etag
                rec churn "pass=$pass" "puts_ok=$ok" "puts_failed=$bad"
                log "  config PUTs during churn: $ok ok, $bad failed"
                [ "$bad" = 0 ] || log "WARNING: $bad config PUTs failed during churn";;
            stream-1g)
                check_pass edge pass.bench.test "$e/100k.html"
                stream_1g "$pass" edge "$EDGE_PORT" pass.bench.test
                stream_1g "$pass" nginx-pass "$NGINX_PASS_PORT" bench.test;;
            idle-10k)
                check_hit edge hit.bench.test "$e/1k.html"
                idle_conns "$pass" edge "$EDGE_PORT" hit.bench.test
                check_hit nginx-cache bench.test "http://127.0.0.1:$NGINX_CACHE_PORT/1k.html"
                idle_conns "$pass" nginx-cache "$NGINX_CACHE_PORT" bench.test
                check_hit varnish bench.test "http://127.0.0.1:$VARNISH_PORT/1k.html"
                idle_conns "$pass" varnish "$VARNISH_PORT" bench.test
                idle_conns "$pass" haproxy "$HAPROXY_PORT" bench.test;;
            hostile-10k)
                check_hit edge hit.bench.test "$e/1k.html"
                hostile "$pass" edge "$EDGE_PORT" hit.bench.test "$EDGE_TLS_PORT"
                check_hit nginx-cache bench.test "http://127.0.0.1:$NGINX_CACHE_PORT/1k.html"
                hostile "$pass" nginx-cache "$NGINX_CACHE_PORT" bench.test;;
        esac
    done
    grep -E ' (ERROR|WARN) ' "$EDGE_D/edge.log" | head -5 >&2 || true
    curl -sf "http://127.0.0.1:$CONTROL_PORT/metrics" >"$EDGE_D/metrics.txt" || true
    log "hook invocations: $(awk '/^edge_hook_invocations_total/ { n += $2 } END { print n + 0 }' "$EDGE_D/metrics.txt"), handed to the hook threads: $(awk '/^edge_hook_offloaded_total/ { n += $2 } END { print n + 0 }' "$EDGE_D/metrics.txt")"
    log "pass $pass done; stopping the servers"
    stop_edge
    log "edge stopped"
    for p in nginx-cache nginx-pass varnish haproxy; do stop_peer "$p"; log "$p stopped"; done
    if want bluegreen-1k; then stop_peer nginx-njs; log "nginx-njs stopped"; fi
}

# ---------------------------------------------------------------- main
log "runtime dir $BENCH_DIR; RUNS=$RUNS DURATION=$DURATION CONNS=$CONNS PASSES='$PASSES' SCENARIOS='$SCENARIOS'"
for p in nginx-cache nginx-pass nginx-njs varnish haproxy origin; do stop_peer "$p"; done  # leftovers of a killed run
mkdir -p "$BENCH_DIR"; chmod 755 "$BENCH_DIR"
rm -f "$BENCH_DIR/churn.stop"
: > "$RAW"
rec meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "nproc=$NPROC" "hz=$HZ" "loadavg=$(cut -d' ' -f1-3 /proc/loadavg)" "runs=$RUNS" "duration=$DURATION" "conns=$CONNS" \
    "warmup=$WARMUP" "idle_conns=$IDLE_CONNS" "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "dirty=$(git -C "$ROOT" status --porcelain -- host Cargo.toml Cargo.lock 2>/dev/null | wc -l)" \
    "cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo | tr '\t' ' ')" \
    "nginx=$(nginx -v 2>&1 | sed 's|.*/||')" "varnish=$(varnishd -V 2>&1 | head -1 | sed -E 's/.*varnish-([^ ]+).*/\1/')" \
    "haproxy=$(haproxy -v | head -1 | awk '{print $3}')" "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')"

mkdir -p "$BENCH_DIR/www"; chmod 755 "$BENCH_DIR/www"
head -c 1024   /dev/zero | tr '\0' 'a' > "$BENCH_DIR/www/1k.html"
head -c 102400 /dev/zero | tr '\0' 'b' > "$BENCH_DIR/www/100k.html"
# A page that compresses as HTML does (about 5:1), for hit-gzip-10k.
awk 'BEGIN { for (i = 0; length(s) < 10240; i++) s = s sprintf("<li class=\"product\"><a href=\"/p/%d\">Product %d</a> <span>%d.%02d EUR</span></li>\n", i * 37, i, i % 90 + 9, i % 100)
             printf "%s", substr(s, 1, 10240) }' > "$BENCH_DIR/www/10k.html"
rm -f "$BENCH_DIR/www/1g.bin"; truncate -s 1G "$BENCH_DIR/www/1g.bin"
chmod 644 "$BENCH_DIR"/www/*
start_nginx origin origin.conf "$ORIGIN_PORT" 1
: > "$BENCH_DIR/origin/probe.log"

for pass in $PASSES; do run_pass "$pass"; done

stop_peer origin
rec meta "elapsed_s=$(( $(date +%s) - T_START ))" "build_s=$BUILD_S" "quiet_wait_s=$QUIET_SPENT" "runs_repeated=$RUNS_REPEATED"
mkdir -p "$OUT_DIR"
python3 "$HERE/report.py" "$RAW" "$OUT_DIR"
log "done in $(( $(date +%s) - T_START )) s: $OUT_DIR/suite.md, suite.csv, suite.png"
