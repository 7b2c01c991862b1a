#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian 12 machine. Idempotent: a second run takes
# seconds. Prints what it installs; the installers' own noise goes to target/setup.log.
#
#   scripts/setup.sh            everything
#   scripts/setup.sh --no-torch skip the libtorch wheel (only the trainer needs it)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
log=target/setup.log
want_torch=1
for a in "$@"; do
  case "$a" in
    --no-torch) want_torch=0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

step() { printf '[setup] %s\n' "$*"; }

# 1. Debian packages: headless Chromium + driver for browser tests, Fashion-MNIST.
apt_pkgs=(chromium chromium-driver dataset-fashion-mnist)
# nginx (TLS reverse proxy), socat (the test client's TLS hop) and openssl: server/tests/nginx.rs.
apt_pkgs+=(nginx-light socat openssl)
# g++: libfuzzer-sys's build script compiles libFuzzer (C++) when test.sh checks the fuzz targets.
apt_pkgs+=(g++)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  apt-get update >>"$log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >>"$log" 2>&1
fi

# 2. The wasm32 target.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown >>"$log" 2>&1
fi

# 3. wasm-bindgen-cli at exactly the version in Cargo.lock.
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wb_version" ]; then
  step "cargo install wasm-bindgen-cli $wb_version (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$wb_version" >>"$log" 2>&1
fi

# 3b. wasm-pack (builds the browser client and runs the wasm crates' browser tests; it uses the
# wasm-bindgen CLI above and Debian's chromedriver, see scripts/build-wasm.sh).
wp_version=0.15.1
if [ "$(wasm-pack --version 2>/dev/null | awk '{print $2}')" != "$wp_version" ]; then
  step "cargo install wasm-pack $wp_version (a few minutes, once)"
  cargo install wasm-pack --version "$wp_version" --locked >>"$log" 2>&1
fi

# 4. Node packages for the page tests (playwright-core drives Debian's Chromium; it downloads
# nothing) and the npm package's type check (typescript).
if [ -f tests/package.json ] && { [ ! -d tests/node_modules/playwright-core ] || [ ! -d tests/node_modules/typescript ]; }; then
  step "npm install (tests/: playwright-core, typescript)"
  (cd tests && npm install --no-audit --no-fund) >>"$log" 2>&1
fi

# 5. libtorch for the trainer, from the lean PyPI wheel, into .venv (DESIGN.md §5).
if [ "$want_torch" = 1 ]; then
  if [ ! -x .venv/bin/python ]; then
    step "python3 -m venv .venv"
    python3 -m venv .venv >>"$log" 2>&1
  fi
  # Python's `import torch` needs cuDNN, which the lean install leaves out; the trainer only needs
  # libtorch itself, so check for the library (and the pinned version) instead.
  torch_dir=.venv/lib/python3.11/site-packages/torch
  if [ ! -f "$torch_dir/lib/libtorch_cpu.so" ] \
    || ! grep -qx 'Version: 2.13.0' .venv/lib/python3.11/site-packages/torch-*.dist-info/METADATA 2>/dev/null; then
    step "pip install torch==2.13.0 (lean: no CUDA libraries beyond the runtime, ~1 GB, once)"
    .venv/bin/pip install --no-deps torch==2.13.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85 >>"$log" 2>&1
  fi
fi
# 6. The ONNX conformance suite's references (onnx/tests/*.py): the onnx package (its node-test
# generators and light models) and onnxruntime, pinned, into .venv.
if [ ! -x .venv/bin/python ]; then
  step "python3 -m venv .venv"
  python3 -m venv .venv >>"$log" 2>&1
fi
if ! .venv/bin/python -c 'import onnx, onnxruntime, numpy, sys
sys.exit(0 if (onnx.__version__, onnxruntime.__version__) == ("1.23.2", "1.32.0") else 1)' >/dev/null 2>&1; then
  step "pip install onnx==1.23.2 onnxruntime==1.32.0 numpy (ONNX conformance references)"
  .venv/bin/pip install onnx==1.23.2 onnxruntime==1.32.0 numpy >>"$log" 2>&1
fi
step "ready"
