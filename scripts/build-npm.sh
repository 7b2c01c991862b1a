#!/usr/bin/env bash
# Assembles the npm package `cryptonas` and packs it with `npm pack`; prints the tarball's path.
#
#   scripts/build-npm.sh [--no-build]     (--no-build: www/pkg/ is already built)
#
# One source of truth: the module and its workers are the demo page's own files (www/cryptonas.js,
# worker.js, eval-worker.js, eval-jobs.js, wasm.js, and wasm-pack's two builds in www/pkg/ and
# www/pkg-relaxed/), copied as they are
# next to the hand-written package.json, cryptonas.d.ts and README.md of packages/cryptonas/. The
# package keeps www/'s layout, so every relative import resolves the same way in both.
# Output: $CARGO_TARGET_DIR/npm/cryptonas-<version>.tgz (the staging folder next to it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
if [ "${1:-}" != --no-build ]; then
  scripts/build-wasm.sh >&2
fi
for f in www/pkg/wasm_client.js www/pkg/wasm_client_bg.wasm \
  www/pkg-relaxed/wasm_client.js www/pkg-relaxed/wasm_client_bg.wasm; do
  [ -f "$f" ] || { echo "build-npm.sh: $f is missing (run scripts/build-wasm.sh)" >&2; exit 1; }
done
out="$target/npm"
stage="$out/cryptonas"
rm -rf "$stage"
mkdir -p "$stage/pkg" "$stage/pkg-relaxed"
cp packages/cryptonas/package.json packages/cryptonas/cryptonas.d.ts packages/cryptonas/README.md "$stage/"
cp www/cryptonas.js www/worker.js www/eval-worker.js www/eval-jobs.js www/wasm.js "$stage/"
cp www/pkg/wasm_client.js www/pkg/wasm_client_bg.wasm "$stage/pkg/"
cp www/pkg-relaxed/wasm_client.js www/pkg-relaxed/wasm_client_bg.wasm "$stage/pkg-relaxed/"
tarball=$(cd "$stage" && npm pack --silent --pack-destination "$out")
echo "$out/$tarball"
