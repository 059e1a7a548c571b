#!/usr/bin/env bash
# The one test command: installs what the tests need, then checks formatting,
# lints, and runs every test in the workspace. CI runs exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The toolchain and the guest target come from rust-toolchain.toml; an existing
# toolchain does not always pick up a target added there later, so ask once.
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# The fleet tests run a real etcd (Debian's etcd-server); the console test
# drives Debian's Chromium. (The JavaScript-hook and console tests run `npm ci` in
# guest-sdk/js and tests/browser themselves: Node.js 20 and npm are needed.)
missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v npm >/dev/null || missing+=(nodejs npm)
# README's examples (host/tests/readme.rs) use curl and jq.
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
# The cache-tests step fetches the suite's pinned commit with git.
command -v git >/dev/null || missing+=(git)
if ((${#missing[@]})); then
    sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# One clean build, nothing to reuse: incremental state would only take disk.
export CARGO_INCREMENTAL=0

cargo fmt --all -- --check
cargo fmt --all --manifest-path examples/Cargo.toml -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The example hooks are their own workspace, built for the guest target.
cargo clippy --manifest-path examples/Cargo.toml --target wasm32-wasip2 --release --locked -- -D warnings
# The SDK without `std` (its own allocator and panic handler), as `bluegreen`
# uses it: alone, since one build with the other examples would turn `std` on.
cargo clippy --manifest-path examples/Cargo.toml --target wasm32-wasip2 --release --locked -p bluegreen -- -D warnings
cargo clippy -p edge-sdk --no-default-features --all-targets --locked -- -D warnings
# The examples' own unit tests (their pure helpers), on this machine's target.
cargo test --manifest-path examples/Cargo.toml --locked --quiet

# Supply chain (deny.toml): licenses, duplicate versions, sources; the
# advisories too when the RustSec database on GitHub can be fetched.
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
cargo deny --locked check bans licenses sources
if cargo deny fetch db >/dev/null 2>&1; then
    cargo deny --locked --offline check advisories
else
    echo "cargo deny: advisories not checked (the RustSec database on GitHub cannot be reached)"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Every test, and the SDK's once more without its `std` feature.
all_tests() {
    local rc=0
    cargo test --workspace --locked --no-fail-fast || rc=$?
    cargo test -p edge-sdk --no-default-features --locked || rc=$?
    return "$rc"
}
all_tests 2>&1 | tee "$log" || status=$?
# The http-tests/cache-tests conformance suite, both the npm package (2021)
# and the repository's pinned commit, against the debug host the tests just
# built: a required test listed in scripts/cache-tests/expected-*.txt that
# does not pass fails the command; a new pass is reported, to be listed.
# The repository's copy needs github.com; where it cannot be reached (as the
# RustSec database above), the step says so and the npm copy still runs.
edge_bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/edge"
suites=(npm)
if [[ -n "${SUITE_REPO:-}" ]] || timeout 30 git ls-remote --exit-code \
        https://github.com/http-tests/cache-tests.git HEAD >/dev/null 2>&1; then
    suites+=(current)
else
    echo "cache-tests (current): not run (github.com cannot be reached; SUITE_REPO=<a clone> runs it from elsewhere)"
fi
for suite in "${suites[@]}"; do
    SUITE="$suite" EDGE_BIN="$edge_bin" EXPECTED="scripts/cache-tests/expected-$suite.txt" \
        FAILURES=1 ./scripts/cache-tests/run.sh || status=$?
done
# Coverage-guided fuzzing of the config, hook-output and Cache-Control
# parsers, FUZZ_SECONDS each (their seed corpora also ran as tests above).
FUZZ_SECONDS="${FUZZ_SECONDS:-60}" ./scripts/fuzz.sh || status=$?
# One plain closing line for the whole run.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
