#!/usr/bin/env bash
# A JavaScript hook's edit -> result, as a plugin author lives it:
#
#   bench/js_loop.sh                 # EDITS=5 edits of each loop
#
# 1. `edge dev`: a plugin from `edge hook new --lang js`, served by `edge dev`
#    with its origin on loopback; each edit changes the value of a header the
#    hook sets, and the time is from the write to the first response that
#    carries the new value (curl every 50 ms).
# 2. `edge hook build` + `edge hook test`: the same edit, then the two commands
#    one after the other, as a shell loop runs them.
#
# Prints every edit's seconds and each loop's median. The plugin's npm packages
# are guest-sdk/js's (npm ci there when missing), linked, so nothing is fetched
# per run. Needs Node.js 20, curl, python3 and a release build of edge
# (`cargo build --release -p edge`, or EDGE_BIN).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EDGE_BIN="${EDGE_BIN:-$ROOT/target/release/edge}"
EDITS="${EDITS:-5}"
WORK="$(mktemp -d /tmp/edge-js-loop.XXXXXX)"
VIEWER_PORT="${VIEWER_PORT:-18190}"
CONTROL_PORT="${CONTROL_PORT:-18191}"
ORIGIN_PORT="${ORIGIN_PORT:-18192}"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$EDGE_BIN" ] || { echo "no $EDGE_BIN: cargo build --release -p edge" >&2; exit 1; }
if [ ! -d "$ROOT/guest-sdk/js/node_modules/@bytecodealliance/componentize-js" ]; then
    (cd "$ROOT/guest-sdk/js" && npm ci --no-audit --no-fund)
fi

now() { date +%s.%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

cd "$WORK"
export EDGE_COMPILE_CACHE="$WORK/compiled"
project="$("$EDGE_BIN" hook new canary --lang js --dir "$WORK")"
ln -s "$ROOT/guest-sdk/js/node_modules" "$project/node_modules"
original="$(cat "$project/hook.js")"
edit() { printf '%s\n' "${original//\"x-hook\", \"canary\"/\"x-hook\", \"$1\"}" > "$project/hook.js"; }

mkdir -p origin && echo local > origin/index.html
python3 -m http.server "$ORIGIN_PORT" --bind 127.0.0.1 --directory origin >/dev/null 2>&1 &
pids+=($!)
cat > dist.json <<EOF
{"aliases": ["dev.example.com"],
 "origins": [{"id": "web", "domain_name": "127.0.0.1:1", "protocol": "http"}],
 "default_cache_behavior": {"target_origin_id": "web", "default_ttl": 0, "hooks": {
   "viewer_request": {"module": "canary"}, "viewer_response": {"module": "canary"}}}}
EOF

header() {
    curl -s -o /dev/null -D - -H 'Host: dev.example.com' "http://127.0.0.1:$VIEWER_PORT/" 2>/dev/null |
        tr -d '\r' | awk -F': ' 'tolower($1) == "x-hook" { print $2 }'
}
wait_for() {
    local want="$1" deadline=$(($(date +%s) + 120))
    until [ "$(header)" = "$want" ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "never served x-hook: $want" >&2; exit 1; }
        sleep 0.05
    done
}

echo "edge dev: edit -> the first response with the new header"
"$EDGE_BIN" dev --config dist.json --origin "http://127.0.0.1:$ORIGIN_PORT" \
    --hook "canary=$project" --listen "127.0.0.1:$VIEWER_PORT" \
    --control "127.0.0.1:$CONTROL_PORT" > dev.log 2>&1 &
pids+=($!)
wait_for canary
dev=()
for i in $(seq 1 "$EDITS"); do
    start=$(now)
    edit "dev-$i"
    wait_for "dev-$i"
    took=$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')
    dev+=("$took")
    printf '  edit %d: %.2f s\n' "$i" "$took"
done
grep -E "^hook canary" dev.log | sed 's/^/  edge dev: /'

echo "edge hook build + edge hook test: edit -> the report"
cli=()
for i in $(seq 1 "$EDITS"); do
    start=$(now)
    edit "test-$i"
    wasm="$("$EDGE_BIN" hook build "$project" 2>/dev/null)"
    "$EDGE_BIN" hook test "$wasm" --request "$project/request.json" --origins origin,canary > test.out
    grep -q "x-hook: test-$i" test.out || { echo "the report lacks x-hook: test-$i" >&2; cat test.out >&2; exit 1; }
    took=$(awk -v a="$start" -v b="$(now)" 'BEGIN { print b - a }')
    cli+=("$took")
    printf '  edit %d: %.2f s\n' "$i" "$took"
done

printf 'median edit -> result: edge dev %.2f s, edge hook build + test %.2f s (%d edits each)\n' \
    "$(printf '%s\n' "${dev[@]}" | median)" "$(printf '%s\n' "${cli[@]}" | median)" "$EDITS"
