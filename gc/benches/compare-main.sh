#!/usr/bin/env bash
# Old vs new in one run: builds this bench file against the engine as shipped at commit $1
# (default 3954f9a, main before issue 20) with `--cfg gc_main_api`, then runs both bench binaries
# back to back (process CPU time, one thread) and prints uptime and the CPU features before/after.
# Usage: gc/benches/compare-main.sh [main-commit] [criterion filter]   (from the repository root)
set -euo pipefail
main=${1:-3954f9a}
filter=${2:-}
old=$(mktemp -d /tmp/gc-main.XXXX)
git archive "$main" | tar -x -C "$old"
cp gc/benches/garble.rs "$old/gc/benches/garble.rs"
mkdir -p "$old/gc/tests/data" && cp gc/tests/data/aes_128.txt "$old/gc/tests/data/"
# Reuse this checkout's compiled dependencies.
mkdir -p "$old/target" && cp -r target/release "$old/target/" 2>/dev/null || true
(cd "$old" && CARGO_TARGET_DIR="$old/target" cargo rustc -q -p cryptonas-gc --bench garble \
    --profile bench -- --cfg gc_main_api)
cargo bench -q -p cryptonas-gc --bench garble --no-run
new_bin=$(cargo bench -p cryptonas-gc --bench garble --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))/\1/p')
old_bin=$(ls -t "$old"/target/release/deps/garble-* | grep -v '\.d$' | head -1)
grep -m1 'model name' /proc/cpuinfo
grep -o -w 'aes\|vaes\|avx2\|avx512f\|avx512vl' /proc/cpuinfo | sort | uniq -c | tr '\n' ' '; echo
echo "rustc: $(rustc --version); RUSTFLAGS='${RUSTFLAGS:-}' (bench profile = release: thin LTO, 4 codegen units)"
uptime
echo "== main ($main)"; "$old_bin" --bench $filter 2>&1 | grep -E '^[a-z_0-9]+/|thrpt:' | grep -v Benchmarking
echo "== this branch"; "$new_bin" --bench $filter 2>&1 | grep -E '^[a-z_0-9]+/|thrpt:' | grep -v Benchmarking
uptime
rm -rf "$old"
