#!/usr/bin/env bash
# Builds the browser client into www/pkg/ with wasm-pack (`--target web`, the `wasm-release` cargo
# profile). Nothing is downloaded: `--mode no-install` makes wasm-pack use the wasm-bindgen CLI on
# PATH (scripts/setup.sh installs it at the version in Cargo.lock; wasm-pack checks the match and
# fails instead of fetching another), and wasm-opt is off in wasm-client/Cargo.toml (Debian's
# binaryen produces a broken module, DESIGN.md §5). www/pkg/ is then a wasm-pack package (glue,
# .wasm, TypeScript declarations, package.json); scripts/build-npm.sh wraps it into the npm package.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
wasm-pack --version
wasm-pack build wasm-client --target web --profile wasm-release --mode no-install \
  --out-dir ../www/pkg --no-gitignore
ls -l www/pkg/wasm_client_bg.wasm
