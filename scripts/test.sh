#!/usr/bin/env bash
# Sets up (idempotently) and runs every test of the project: format, lints, native tests, the wasm32
# build of the shared crates, and the headless-browser tests. The README's test command; CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "native tests"
cargo test --workspace

step "wasm32 build of the shared crates"
cargo build --target wasm32-unknown-unknown -p cryptonas-crypto -p cryptonas-gc -p cryptonas-ot -p cryptonas-model -p cryptonas-he -p wasm-client

step "browser tests (headless Chromium)"
for dir in crypto gc ot he wasm-client; do
  if [ -d "$dir/tests" ] && grep -rqs wasm_bindgen_test "$dir/tests"; then
    pkg=$(awk -F'"' '/^name/ { print $2; exit }' "$dir/Cargo.toml")
    CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=600 \
      cargo test --target wasm32-unknown-unknown -p "$pkg" --tests
  fi
done
