#!/usr/bin/env bash
# Runs every fuzz target for RUNS executions (default 1,000,000) and prints one summary line each.
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
#   cargo install cargo-fuzz --locked && fuzz/run.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")"
runs=${1:-1000000}
export RUSTC_BOOTSTRAP=1
for t in protocol_msg sessions he_msgs ot_msgs gc_wire model_files eval_job; do
  cargo fuzz build -O "$t" >/dev/null 2>&1
  out=$(cargo fuzz run -O "$t" -- -runs="$runs" -max_len=65536 2>&1 | tail -n 1)
  echo "$t: $out"
done
