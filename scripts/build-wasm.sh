#!/usr/bin/env bash
# Builds the browser client into www/pkg/ with wasm-pack (`--target web`, the `wasm-release` cargo
# profile), and a second build with relaxed SIMD into www/pkg-relaxed/ (www/wasm.js loads it where
# the browser has relaxed SIMD: its vector-permute AES evaluates garbled gates about 1.4× faster). Nothing is downloaded: `--mode no-install` makes wasm-pack use the wasm-bindgen CLI on
# PATH (scripts/setup.sh installs it at the version in Cargo.lock; wasm-pack checks the match and
# fails instead of fetching another), and wasm-opt is off in wasm-client/Cargo.toml (Debian's
# binaryen produces a broken module, DESIGN.md §5). www/pkg/ is then a wasm-pack package (glue,
# .wasm, TypeScript declarations, package.json); scripts/build-npm.sh wraps it into the npm package.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# The wasm32 flags live in .cargo/config.toml: the getrandom backend cfg and WebAssembly SIMD
# (`+simd128`, which the crypto crate's bitsliced AES needs to run in `v128` registers; Chrome/Edge
# 91+, Firefox 89+, Safari 16.4+). RUSTFLAGS in the environment would silently replace them.
if [[ -n "${RUSTFLAGS:-}${CARGO_ENCODED_RUSTFLAGS:-}" ]]; then
  echo "build-wasm.sh: unset RUSTFLAGS/CARGO_ENCODED_RUSTFLAGS (they override .cargo/config.toml's wasm32 flags)" >&2
  exit 1
fi
wasm-pack --version
wasm-pack build wasm-client --target web --profile wasm-release --mode no-install \
  --out-dir ../www/pkg --no-gitignore
# The relaxed-SIMD build: the same flags as .cargo/config.toml's plus `+relaxed-simd` (given in
# RUSTFLAGS, which replace the config's), in a target folder of its own so that neither build
# invalidates the other's cache. Chrome/Edge 114+ run it; elsewhere the module does not validate and
# www/wasm.js loads www/pkg/.
target="${CARGO_TARGET_DIR:-$root/target}"
CARGO_TARGET_DIR="$target/wasm-relaxed" \
  RUSTFLAGS='--cfg getrandom_backend="wasm_js" -C target-feature=+simd128,+relaxed-simd' \
  wasm-pack build wasm-client --target web --profile wasm-release --mode no-install \
  --out-dir ../www/pkg-relaxed --no-gitignore
ls -l www/pkg/wasm_client_bg.wasm www/pkg-relaxed/wasm_client_bg.wasm
