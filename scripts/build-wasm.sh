#!/usr/bin/env bash
# Builds the browser client into www/pkg/ (wasm-bindgen --target web; no wasm-opt: Debian's binaryen
# produces a broken module, see DESIGN.md §5). The wasm-bindgen CLI must match the pinned crate version.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build -p wasm-client --target wasm32-unknown-unknown --profile wasm-release
wasm-bindgen --target web --out-dir www/pkg \
  "$target/wasm32-unknown-unknown/wasm-release/wasm_client.wasm"
ls -l www/pkg/wasm_client_bg.wasm
