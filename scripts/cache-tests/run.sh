#!/usr/bin/env bash
# Runs the http-tests/cache-tests suite (the suite behind cache-tests.fyi, from
# the npm package http-cache-tests) against the edge host, then scores it next
# to the published results of other caches that ship with the suite.
#
#   scripts/cache-tests/run.sh            # needs node and npm
#
# Env: SUITE_VERSION=0.4.5 WORK=target/cache-tests PROFILE=release
#      ORIGIN_PORT=18400 EDGE_PORT=18401 CONTROL_PORT=18402
#      FAILURES=1 (list every required test that does not pass)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SUITE_VERSION="${SUITE_VERSION:-0.4.5}"
WORK="${WORK:-$ROOT/target/cache-tests}"
PROFILE="${PROFILE:-release}"
ORIGIN_PORT="${ORIGIN_PORT:-18400}"; EDGE_PORT="${EDGE_PORT:-18401}"; CONTROL_PORT="${CONTROL_PORT:-18402}"
TOKEN=cache-tests

for tool in node npm curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
mkdir -p "$WORK"
SUITE="$WORK/node_modules/http-cache-tests"
if [ "$(node -p "try { require('$SUITE/package.json').version } catch (e) { '' }")" != "$SUITE_VERSION" ]; then
    npm install --prefix "$WORK" --no-audit --no-fund --loglevel=error "http-cache-tests@$SUITE_VERSION" >&2
fi

cargo build --profile "$PROFILE" -p edge --manifest-path "$ROOT/Cargo.toml" >&2
case "$PROFILE" in dev) BIN="$ROOT/target/debug/edge";; *) BIN="$ROOT/target/$PROFILE/edge";; esac

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
[ -n "${KEEP:-}" ] || trap cleanup EXIT

# The suite's origin.
(cd "$SUITE" && npm_config_port="$ORIGIN_PORT" npm_config_protocol=http \
    npm_config_pidfile="$WORK/server.pid" exec node server/server.mjs) >"$WORK/server.log" 2>&1 &
pids+=($!)

# The host, with one distribution answering the client's Host (127.0.0.1):
# the whole query string in the cache key (the suite varies it), no
# heuristic freshness (default_ttl 0) and Set-Cookie stored, as RFC 9111
# caches behave (both differ from the CDN defaults; docs/caching.md).
rm -rf "$WORK/edge"; mkdir -p "$WORK/edge"
RUST_LOG=warn "$BIN" serve --data-dir "$WORK/edge" --listen "127.0.0.1:$EDGE_PORT" \
    --control "127.0.0.1:$CONTROL_PORT" --token "$TOKEN" >"$WORK/edge.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$CONTROL_PORT/healthz" >/dev/null && \
        curl -s -o /dev/null "http://127.0.0.1:$ORIGIN_PORT/" && break
    sleep 0.1
done
curl -sf -X POST "http://127.0.0.1:$CONTROL_PORT/v1/distributions" -H "authorization: Bearer $TOKEN" -d "{
    \"comment\": \"cache-tests\", \"aliases\": [\"127.0.0.1\"],
    \"origins\": [{\"id\": \"suite\", \"domain_name\": \"127.0.0.1:$ORIGIN_PORT\", \"protocol\": \"http\"}],
    \"default_cache_behavior\": {\"target_origin_id\": \"suite\", \"default_ttl\": 0,
                               \"store_set_cookie\": true,
                               \"cache_key\": {\"query_strings\": \"all\"}}}" >/dev/null

(cd "$SUITE" && npm_config_base="http://127.0.0.1:$EDGE_PORT" \
    npm_package_config_id="" node --no-warnings cli.mjs) >"$WORK/edge.json" 2>"$WORK/cli.log"

peers=()
for peer in nginx varnish squid trafficserver apache fastly; do
    [ -f "$SUITE/results/$peer.json" ] && peers+=("$peer=$SUITE/results/$peer.json")
done
node "$ROOT/scripts/cache-tests/score.mjs" "$SUITE" "edge=$WORK/edge.json" "${peers[@]}"
echo "results: $WORK/edge.json (published results of the others: $SUITE/results/)" >&2
