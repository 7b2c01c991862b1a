#!/usr/bin/env bash
# Sets up (idempotently) and runs every test of the project: format, lints, native tests, the trainer's
# libtorch tests, the wasm32 build and headless-Chromium tests of the shared crates, the benchmark
# harness in its short mode (native and in headless Chromium), the Playwright test of the demo
# page, and the npm package's test (the packed tarball installed into a fresh folder, its example).
# The README's test command; CI runs it through .ci/run. Prints "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

passed=0
failed=0
failures=()
step() {
  local name=$1
  shift
  printf '\n== %s\n' "$name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

export LIBTORCH="$PWD/.venv/lib/python3.11/site-packages/torch"
export LIBTORCH_BYPASS_VERSION_CHECK=1
export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=900
# setup.sh installs nginx and socat: the deployment test (server/tests/nginx.rs) must not skip.
export CRYPTONAS_REQUIRE_NGINX=1

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy -D warnings" cargo clippy --workspace --all-targets -- -D warnings
step "native tests" cargo test --workspace
# The fuzz targets live outside the workspace (cargo-fuzz, nightly flags) and rotted once unseen;
# a plain check on the stable toolchain keeps them compiling (running them is fuzz/run.sh's job).
step "fuzz targets compile (cargo check)" cargo check --manifest-path fuzz/Cargo.toml --bins
step "trainer tests (tch)" cargo test -p cryptonas-search --features tch
step "wasm32 build of the shared crates" cargo build --target wasm32-unknown-unknown \
  -p cryptonas-crypto -p cryptonas-gc -p cryptonas-ot -p cryptonas-model -p cryptonas-he \
  -p cryptonas-protocol -p wasm-client
# wasm-pack runs each crate's tests with the wasm-bindgen-test-runner installed next to the pinned
# wasm-bindgen CLI (`--mode no-install`: it fails rather than download one) in Debian's Chromium
# through Debian's chromedriver (`--chromedriver`: it downloads none). `--lib --test '*'` is what
# `cargo test --tests` ran before (wasm-pack already passes `--tests` to its `cargo build`, and cargo
# refuses it twice; without a target selection `cargo test` would build the examples for wasm32 too).
for dir in crypto gc ot he model wasm-client; do
  step "headless Chromium (wasm-pack test): $dir" wasm-pack test --headless --chrome \
    --chromedriver /usr/bin/chromedriver --mode no-install "$dir" --lib --test '*'
done
# The relaxed-SIMD build (www/pkg-relaxed/, loaded where the browser has relaxed SIMD) runs
# another AES, the crypto crate's vector-permute `VecPerm`: its known-answer and cross-checks, and
# the garbling tests on it, in the same Chromium (which has relaxed SIMD).
relaxed_wasm_test() {
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/wasm-relaxed" \
    RUSTFLAGS='--cfg getrandom_backend="wasm_js" -C target-feature=+simd128,+relaxed-simd' \
    wasm-pack test --headless --chrome --chromedriver /usr/bin/chromedriver --mode no-install "$1" \
    --lib --test '*'
}
for dir in crypto gc; do
  step "headless Chromium, relaxed-SIMD build (wasm-pack test): $dir" relaxed_wasm_test "$dir"
done
step "build the browser client (wasm-pack)" scripts/build-wasm.sh
step "benchmark harness (short mode, native and headless Chromium, asserts correctness)" \
  cargo run -q -p cryptonas-bench -- --short --browser --out "$(mktemp -d)"
step "ONNX conformance (onnx node tests, light models, onnxruntime references)" scripts/onnx-conformance.sh
step "demo page in headless Chromium (Playwright)" node tests/browser/demo.spec.mjs
# A user's ONNX model with max pools and a ReLU6 (tests/data/maxpool_cnn.onnx), imported with the
# `cryptonas` tool and classified privately in the page, logits bit-exact with the server's plaintext
# fixed point (CRYPTONAS_QUICK: one sample and the second click; the run above covers the rest of
# the page, and tests/tests/onnx_maxpool.rs the native client on this model).
maxpool_page() {
  local dir=target/e2e-maxpool-models
  cargo run -q -p cryptonas-cli -- import tests/data/maxpool_cnn.onnx --out "$dir/maxpool_cnn" \
    --calibration www/samples >"$dir.report.txt" &&
    CRYPTONAS_QUICK=1 CRYPTONAS_TEST_MODELS="$PWD/$dir" node tests/browser/demo.spec.mjs
}
step "demo page with an imported max-pool model (ONNX import, Playwright)" maxpool_page
npm_pack() { tarball=$(scripts/build-npm.sh --no-build) && echo "$tarball"; }
step "npm package: npm pack" npm_pack
step "npm package: installed tarball's example (tsc, real server, headless Chromium)" \
  node tests/browser/embed.spec.mjs "${tarball:-}"

printf '\n'
for f in "${failures[@]}"; do printf 'FAILED: %s\n' "$f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
