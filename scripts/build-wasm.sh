#!/usr/bin/env bash
# Builds the browser client into www/pkg/ (wasm-bindgen --target web; no wasm-opt: Debian's binaryen
# produces a broken module, see DESIGN.md §5). The wasm-bindgen CLI must match the pinned crate version.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
# The wasm32 flags live in .cargo/config.toml: the getrandom backend cfg and WebAssembly SIMD
# (`+simd128`, which the crypto crate's bitsliced AES needs to run in `v128` registers; Chrome/Edge
# 91+, Firefox 89+, Safari 16.4+). RUSTFLAGS in the environment would silently replace them.
if [[ -n "${RUSTFLAGS:-}${CARGO_ENCODED_RUSTFLAGS:-}" ]]; then
  echo "build-wasm.sh: unset RUSTFLAGS/CARGO_ENCODED_RUSTFLAGS (they override .cargo/config.toml's wasm32 flags)" >&2
  exit 1
fi
cargo build -p wasm-client --target wasm32-unknown-unknown --profile wasm-release
wasm-bindgen --target web --out-dir www/pkg \
  "$target/wasm32-unknown-unknown/wasm-release/wasm_client.wasm"
ls -l www/pkg/wasm_client_bg.wasm
