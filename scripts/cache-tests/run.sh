#!/usr/bin/env bash
# Runs the http-tests/cache-tests suite (the suite behind cache-tests.fyi)
# against the edge host, then scores it next to the published results of
# other caches that ship with the suite.
#
#   scripts/cache-tests/run.sh                 # npm package http-cache-tests 0.4.5
#   SUITE=current scripts/cache-tests/run.sh   # the suite's repository at SUITE_COMMIT
#
# Needs node, npm and curl, and git for SUITE=current. SUITE=npm (the default) installs the npm
# package (a 2021 copy); SUITE=current fetches one pinned commit of
# github.com/http-tests/cache-tests (shallow) and installs its dependencies
# with npm. Both go to $WORK/<suite>/; a second run reuses them.
#
# Env:
#   SUITE=npm|current
#   SUITE_VERSION=0.4.5                        the npm package's version
#   SUITE_REPO=https://github.com/http-tests/cache-tests.git  (or a local clone)
#   SUITE_COMMIT=b55b8bd...                    the commit SUITE=current runs (2026-07-20)
#   WORK=target/cache-tests
#   PROFILE=release     cargo profile to build the host with (dev: target/debug)
#   EDGE_BIN=path       run this host binary, build nothing
#   ORIGIN_PORT= EDGE_PORT= CONTROL_PORT=      free ports are chosen when unset
#   TEST_ID=id          run one test and print its requests and responses
#   FAILURES=1          list every required test that does not pass
#   EXPECTED=file       fail (exit 1) when a test listed there does not pass;
#                       report tests that newly pass
#   WRITE_EXPECTED=file write the required tests that pass to file
#   KEEP=1              leave the origin and the host running
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SUITE="${SUITE:-npm}"
SUITE_VERSION="${SUITE_VERSION:-0.4.5}"
SUITE_REPO="${SUITE_REPO:-https://github.com/http-tests/cache-tests.git}"
SUITE_COMMIT="${SUITE_COMMIT:-b55b8bda3dbb8c927c04e85bd8d496a8caa3e4ba}"
WORK="${WORK:-$ROOT/target/cache-tests}"
PROFILE="${PROFILE:-release}"
TOKEN=cache-tests

die() { echo "cache-tests: $*" >&2; exit 1; }
need=(node curl)
case "$SUITE" in
    npm) need+=(npm) ;;
    current) need+=(git npm) ;;
    *) die "SUITE is npm or current, not '$SUITE'" ;;
esac
for tool in "${need[@]}"; do
    command -v "$tool" >/dev/null || die "$tool is needed and not installed"
done
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
OUT="$WORK/$SUITE"
mkdir -p "$OUT"

# The suite: $DIR holds tests/ and results/; the origin and the client run
# from it. The two layouts name their entry points differently.
if [ "$SUITE" = npm ]; then
    DIR="$OUT/node_modules/http-cache-tests"
    if [ "$(node -p "try { require('$DIR/package.json').version } catch (e) { '' }")" != "$SUITE_VERSION" ]; then
        npm install --prefix "$OUT" --no-audit --no-fund --no-save --loglevel=error \
            "http-cache-tests@$SUITE_VERSION" >&2 || die "npm install http-cache-tests@$SUITE_VERSION failed"
    fi
    SERVER=server/server.mjs CLI=cli.mjs
else
    DIR="$OUT/repo"
    if [ "$(git -C "$DIR" rev-parse -q --verify HEAD 2>/dev/null)" != "$SUITE_COMMIT" ]; then
        rm -rf "$DIR"
        git init -q "$DIR"
        git -C "$DIR" fetch -q --depth 1 "$SUITE_REPO" "$SUITE_COMMIT" ||
            die "cannot fetch $SUITE_COMMIT from $SUITE_REPO"
        git -C "$DIR" -c advice.detachedHead=false checkout -q FETCH_HEAD
        rm -rf "$DIR/node_modules"
    fi
    if [ ! -f "$DIR/node_modules/.installed" ]; then
        # undici (interim responses) is the one the client needs; the rest
        # serve the suite's web pages.
        (cd "$DIR" && npm install --omit=dev --no-audit --no-fund --no-package-lock \
            --ignore-scripts --loglevel=error >&2) || die "npm install in $DIR failed"
        touch "$DIR/node_modules/.installed"
    fi
    SERVER=test-engine/server/server.mjs CLI=test-engine/cli.mjs
fi

if [ -n "${EDGE_BIN:-}" ]; then
    BIN="$EDGE_BIN"
else
    command -v cargo >/dev/null || die "cargo is needed to build the host (or set EDGE_BIN)"
    cargo build --profile "$PROFILE" -p edge --manifest-path "$ROOT/Cargo.toml" >&2
    TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
    case "$PROFILE" in dev|test) BIN="$TARGET/debug/edge";; *) BIN="$TARGET/$PROFILE/edge";; esac
fi
[ -x "$BIN" ] || die "no host binary at $BIN"

# Three free ports, held open together so that they differ.
if [ -z "${ORIGIN_PORT:-}" ] || [ -z "${EDGE_PORT:-}" ] || [ -z "${CONTROL_PORT:-}" ]; then
    read -r p1 p2 p3 < <(node -e "
        const net = require('net')
        const servers = [0, 1, 2].map(() => net.createServer())
        Promise.all(servers.map(s => new Promise(r => s.listen(0, '127.0.0.1', r)))).then(() => {
          console.log(servers.map(s => s.address().port).join(' '))
          servers.forEach(s => s.close())
        })")
    ORIGIN_PORT="${ORIGIN_PORT:-$p1}" EDGE_PORT="${EDGE_PORT:-$p2}" CONTROL_PORT="${CONTROL_PORT:-$p3}"
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
[ -n "${KEEP:-}" ] || trap cleanup EXIT

# The suite's origin.
(cd "$DIR" && npm_config_port="$ORIGIN_PORT" npm_config_protocol=http \
    npm_config_pidfile="$OUT/server.pid" exec node "$SERVER") >"$OUT/server.log" 2>&1 &
pids+=($!)

# The host, with one distribution answering the client's Host (127.0.0.1):
# the whole query string in the cache key (the suite varies it), no
# heuristic freshness (default_ttl 0) and Set-Cookie stored, as RFC 9111
# caches behave (both differ from the CDN defaults; docs/caching.md).
rm -rf "$OUT/edge"; mkdir -p "$OUT/edge"
RUST_LOG=warn "$BIN" serve --data-dir "$OUT/edge" --listen "127.0.0.1:$EDGE_PORT" \
    --control "127.0.0.1:$CONTROL_PORT" --token "$TOKEN" >"$OUT/edge.log" 2>&1 &
pids+=($!)
up=
for _ in $(seq 1 200); do
    if curl -sf "http://127.0.0.1:$CONTROL_PORT/healthz" >/dev/null &&
       curl -s -o /dev/null "http://127.0.0.1:$ORIGIN_PORT/"; then
        up=1; break
    fi
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || break 2; done
    sleep 0.1
done
[ -n "$up" ] || { tail -n 20 "$OUT/server.log" "$OUT/edge.log" >&2; die "the origin or the host did not come up"; }
curl -sf -X POST "http://127.0.0.1:$CONTROL_PORT/v1/distributions" -H "authorization: Bearer $TOKEN" -d "{
    \"comment\": \"cache-tests\", \"aliases\": [\"127.0.0.1\"],
    \"origins\": [{\"id\": \"suite\", \"domain_name\": \"127.0.0.1:$ORIGIN_PORT\", \"protocol\": \"http\"}],
    \"default_cache_behavior\": {\"target_origin_id\": \"suite\", \"default_ttl\": 0,
                               \"store_set_cookie\": true,
                               \"cache_key\": {\"query_strings\": \"all\"}}}" >/dev/null ||
    die "the host refused the distribution"

if [ -n "${TEST_ID:-}" ]; then
    (cd "$DIR" && npm_config_base="http://127.0.0.1:$EDGE_PORT" npm_config_id="$TEST_ID" \
        exec node --no-warnings "$CLI")
    exit
fi
(cd "$DIR" && npm_config_base="http://127.0.0.1:$EDGE_PORT" \
    npm_package_config_id="" exec node --no-warnings "$CLI") >"$OUT/edge.json" 2>"$OUT/cli.log" ||
    { tail -n 20 "$OUT/cli.log" >&2; die "the suite's client failed"; }

score=(node "$ROOT/scripts/cache-tests/score.mjs")
[ -z "${EXPECTED:-}" ] || score+=(--expected "$EXPECTED")
[ -z "${WRITE_EXPECTED:-}" ] || score+=(--write-expected "$WRITE_EXPECTED")
echo "cache-tests ($SUITE: $(if [ "$SUITE" = npm ]; then echo "http-cache-tests@$SUITE_VERSION"; else echo "$SUITE_COMMIT"; fi))"
"${score[@]}" "$DIR" "edge=$OUT/edge.json"
echo "results: $OUT/edge.json (published results of the others: $DIR/results/)" >&2
