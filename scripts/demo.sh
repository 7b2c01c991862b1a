#!/usr/bin/env bash
# Sets up (idempotently), builds, and starts the demo: the server with the bundled models in models/,
# the browser client in www/. Open the printed URL, pick an image, classify it privately.
#   PORT=8080 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-torch
echo "[demo] building the browser client (wasm32) and the cryptonas tool (release)"
scripts/build-wasm.sh
cargo build --release -q -p cryptonas-cli
bin="${CARGO_TARGET_DIR:-target}/release/cryptonas"
port=${PORT:-8080}
sample=$(ls www/samples/*.jpg 2>/dev/null | head -n 1 || true)
model=$(ls models/*.json 2>/dev/null | head -n 1 | xargs -r basename | sed 's/\.json$//')
cat <<EOT
[demo] starting the server on http://127.0.0.1:$port/  (Ctrl-C stops it)
[demo] from another terminal, the native client:
         $bin classify --server http://127.0.0.1:$port --model ${model:-<name>} ${sample:-<image>}
EOT
# The local demo enables the page's "reveal for comparison" box (off by default: an oracle).
exec "$bin" serve --models models --www www --bind "127.0.0.1:$port" --allow-plaintext
