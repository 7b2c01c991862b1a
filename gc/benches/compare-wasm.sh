#!/usr/bin/env bash
# Old vs new garbling in the browser, in one run: builds gc's `wasm_speed` test and wasm-client's
# GcBench browser test for wasm32 twice, from the tree at commit $1 (default b81dda0: main before
# the bitsliced v128 AES, built as it shipped, without simd128) and from this checkout (simd128,
# `AesBackend::Bitsliced`), then runs them alternately ROUNDS times each in headless Chromium
# (wasm-bindgen-test-runner + Debian's chromedriver) and prints every line and the medians.
# Usage: gc/benches/compare-wasm.sh [old-commit] [rounds]    (from the repository root)
# NEW_RUSTFLAGS, if set, replaces the new side's rustflags (built under target/new-rustflags), e.g.
# the relaxed-SIMD build that detects `AesBackend::VecPerm`:
#   NEW_RUSTFLAGS='--cfg getrandom_backend="wasm_js" -C target-feature=+simd128,+relaxed-simd'
# OLD_RUSTFLAGS likewise for the old side (the same backend on both sides: a kernel change alone).
# Wall-clock figures (the browser's Date.now): run it on a quiet machine and read `uptime`.
# "GcBench gates" is GcBench's garbled gates alone (no decoding to shares); a side without that
# figure (an old commit, whose decoding was free) counts its whole GcBench there.
set -euo pipefail
old_commit=${1:-b81dda0}
rounds=${2:-5}
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
# The old tree and its build stay under target/ (a rerun rebuilds nothing).
work=$PWD/target/compare-wasm/$old_commit
if [ ! -f "$work/Cargo.toml" ]; then
  mkdir -p "$work" && git archive "$old_commit" | tar -x -C "$work"
fi
# The same benchmark on both sides. Since the arithmetic output (protocol 7) a ReLU decodes with
# the hash key and tweak domain, which the old API does not take, so the old side runs the
# benchmark as it was just before (OLD_BENCH_FROM, default e037c52: the same warm-up, sizes and
# fields; SAME_BENCH=1 copies this checkout's instead, for an old commit with the new API). The
# evaluation's ReLU/s is the time from tables and labels to the evaluator's shares on both sides
# (the new side's includes the arithmetic output's hashes, the old side's decoding bits were free).
if [ "${SAME_BENCH:-0}" = 1 ]; then
  cp gc/tests/wasm_speed.rs "$work/gc/tests/wasm_speed.rs"
else
  git show "${OLD_BENCH_FROM:-e037c52}:gc/tests/wasm_speed.rs" > "$work/gc/tests/wasm_speed.rs"
fi
# The old tree as it shipped: no simd128 (its own .cargo/config.toml).
build() { # dir target-dir [rustflags] -> prints the two test .wasm paths (absolute)
  local t
  for t in "cryptonas-gc --test wasm_speed" "wasm-client --test browser"; do
    # shellcheck disable=SC2086 # $t is two words on purpose
    (cd "$1" && if [ -n "${3:-}" ]; then export RUSTFLAGS="$3"; fi &&
      CARGO_TARGET_DIR="$2" nice -n 5 cargo test --release --target wasm32-unknown-unknown \
        -p $t --no-run 2>&1) | sed -n 's/.*Executable .*(\(.*\))/\1/p' | sed "s|^\([^/]\)|$1/\1|"
  done
}
if [ -n "${OLD_RUSTFLAGS:-}" ]; then
  mapfile -t old < <(build "$work" "$work/target-rustflags" "$OLD_RUSTFLAGS")
else
  mapfile -t old < <(build "$work" "$work/target")
fi
if [ -n "${NEW_RUSTFLAGS:-}" ]; then
  mapfile -t new < <(build "$PWD" "$PWD/target/new-rustflags" "$NEW_RUSTFLAGS")
else
  mapfile -t new < <(build "$PWD" "$PWD/target")
fi
[ "${#old[@]}" = 2 ] && [ "${#new[@]}" = 2 ] || { echo "build failed: old=${old[*]} new=${new[*]}" >&2; exit 1; }
grep -m1 'model name' /proc/cpuinfo
echo "Chromium: $(chromium --version 2>/dev/null); wasm-bindgen-test-runner $(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}')"
echo "rustc: $(rustc --version); release profile (thin LTO, 4 codegen units); old: $old_commit $(if [ -n "${OLD_RUSTFLAGS:-}" ]; then echo "with RUSTFLAGS=$OLD_RUSTFLAGS"; else echo "as shipped"; fi); new: $(git rev-parse --short HEAD)${NEW_RUSTFLAGS:+ with RUSTFLAGS=$NEW_RUSTFLAGS}"
uptime
run() { # label wasm [filter]
  wasm-bindgen-test-runner "$2" ${3:+"$3"} --nocapture 2>&1 | grep -E 'AES|AND/s' | sed "s/^/$1 /"
}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((i = 1; i <= rounds; i++)); do
  for side in old new; do
    if [ $side = old ]; then w=("${old[@]}"); else w=("${new[@]}"); fi
    run "$side" "${w[0]}" | tee -a "$out"
    run "$side" "${w[1]}" garbled_evaluation_speed | tee -a "$out"
  done
done
uptime
python3 - "$out" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    side, rest = line.split(' ', 1)
    for name, pat in [('aes (M blocks/s)', r'fixed-key AES ([\d.]+) M'), ('garble (M AND/s)', r'garble ([\d.]+) M AND'),
                      ('evaluate (M AND/s)', r'evaluate ([\d.]+) M AND'), ('GcBench (M AND/s)', r'GcBench.*?([\d.]+) M AND'),
                      ('GcBench gates (M AND/s)', r'the gates alone ([\d.]+) M AND'),
                      ('evaluate (K ReLU/s)', r'evaluate [\d.]+ M AND/s(?:, decode [\d.]+ M hashes/s)? \((\d+) ReLU/s')]:
        m = re.search(pat, rest)
        if m:
            v = float(m.group(1)) / (1e3 if 'ReLU' in name else 1)
            rows.setdefault(name, {}).setdefault(side, []).append(v)
print('median (range) over rounds, old vs new:')
# A side whose GcBench has no gates-alone figure (before it existed, when decoding was free)
# is compared on its whole GcBench figure.
if 'GcBench gates (M AND/s)' in rows and 'GcBench (M AND/s)' in rows:
    for side in ('old', 'new'):
        rows['GcBench gates (M AND/s)'].setdefault(side, rows['GcBench (M AND/s)'].get(side, []))
for name, d in rows.items():
    o, n = d.get('old', []), d.get('new', [])
    if o and n:
        print(f'  {name:24} old {statistics.median(o):6.2f} ({min(o):.2f}-{max(o):.2f})  new {statistics.median(n):6.2f} ({min(n):.2f}-{max(n):.2f})  ratio of medians {statistics.median(n)/statistics.median(o):.2f}x  (n={len(o)}/{len(n)})')
PY
