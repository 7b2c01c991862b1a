#!/usr/bin/env bash
# Retrains the bundled models from scratch with the search crate and exports them into models/
# (arch JSON + safetensors + metadata with the measured float and fixed-point test accuracy),
# then redraws models/pareto.{svg,md}.
#
#   scripts/train-models.sh                  # the paper's 310 epochs per model (needs a GPU or days)
#   EPOCHS=40 BUDGET=8000 scripts/train-models.sh   # what fits on a 2-core machine: 8000 s per model
#   WIDTHS="8" scripts/train-models.sh        # only CNet1 C = 8 (49,152 ReLUs)
#
# Uses the GPU when libtorch sees one (Device::cuda_if_available); runs are resumable (runs/<name>/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export LIBTORCH="$PWD/.venv/lib/python3.11/site-packages/torch"
export LIBTORCH_BYPASS_VERSION_CHECK=1
export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
epochs=${EPOCHS:-310}
widths=${WIDTHS:-4 8 14}
cargo build --release -p cryptonas-search --features tch
bin="${CARGO_TARGET_DIR:-target}/release/cryptonas-search"
for c in $widths; do
  name="cnet1-c$c"
  args=(train --arch cnet1 --width "$c" --epochs "$epochs" --out "runs/$name"
        --export models --name "$name" --fixed-images 1000)
  [ -n "${BUDGET:-}" ] && args+=(--time-budget "$BUDGET")
  [ -f "runs/$name/checkpoint.safetensors" ] && args+=(--resume)
  echo "[train] $name: ${args[*]}"
  "$bin" "${args[@]}"
  # The fixed-point engine's accuracy on the whole test set (the export checks 1,000 images).
  "$bin" check-fixed "models/$name.json"
done
"$bin" pareto --models models
