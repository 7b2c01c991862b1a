#!/usr/bin/env bash
# Runs fuzz targets one after another, each starting from (and adding to) its committed corpus
# `fuzz/corpus/<target>`, and prints one line of numbers per target. cargo-fuzz needs nightly
# flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
#   cargo install cargo-fuzz --locked
#   fuzz/run.sh [RUNS] [TARGET...]            # RUNS executions per target (default 1,000,000)
#   FUZZ_SECONDS=300 fuzz/run.sh 0 [TARGET...] # or a wall-time budget per target instead
# New inputs land in the committed corpus: `cargo fuzz cmin <target>` before committing them.
# Full libFuzzer logs go to fuzz/target/logs/<target>.log. Exits non-zero if any target failed.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
runs=${1:-1000000}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(protocol_msg sessions he_msgs ot_msgs gc_wire model_files eval_job)
fi
if [ -n "${FUZZ_SECONDS:-}" ]; then
  budget=(-max_total_time="$FUZZ_SECONDS")
else
  budget=(-runs="$runs")
fi
mkdir -p target/logs
status=0
for t in "${targets[@]}"; do
  cargo fuzz build -O "$t" >/dev/null 2>&1
  mkdir -p "corpus/$t"
  log="target/logs/$t.log"
  start=$(date +%s)
  rc=0
  cargo fuzz run -O "$t" -- "${budget[@]}" -max_len=65536 >"$log" 2>&1 || rc=$?
  wall=$(($(date +%s) - start))
  # libFuzzer's last status line ("#N DONE cov: C ft: F corp: ... exec/s: E ...").
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  execs=$(sed -nE 's/^Done ([0-9]+) runs.*/\1/p' "$log" | tail -n 1)
  execs=${execs:-$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")}
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  eps=$(sed -nE 's/.* exec\/s: ([0-9]+).*/\1/p' <<<"$last")
  files=$(find "corpus/$t" -type f | wc -l)
  kib=$(du -sk "corpus/$t" | cut -f1)
  echo "$t: execs=${execs:-?} exec/s=${eps:-?} cov=${cov:-?} ft=${ft:-?}" \
    "corpus=${files} files/${kib} KiB wall=${wall}s rc=$rc"
  if [ "$rc" -ne 0 ]; then
    status=1
    grep -E 'Test unit written to|SUMMARY|panicked at' "$log" | sed "s/^/  $t: /" || true
  fi
done
exit "$status"
