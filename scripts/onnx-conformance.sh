#!/usr/bin/env bash
# The ONNX import conformance suite: writes the cases (the onnx package's backend node tests for the
# supported operators, its light real models, and onnxruntime references on random-weight networks)
# into target/onnx-conformance once per script/package version, then runs them through the importer
# and the f32 engine (onnx/tests/conformance.rs). Nothing is fetched beyond the pip packages that
# scripts/setup.sh installs. Results: target/onnx-conformance/results.txt.
#
#   scripts/onnx-conformance.sh [PYTHON]   (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-.venv/bin/python}
dir=target/onnx-conformance
key=$(cat onnx/tests/gen_conformance.py onnx/tests/gen_ort_cases.py | sha256sum | cut -c1-16)-$("$py" -c 'import onnx, onnxruntime; print(onnx.__version__ + "-" + onnxruntime.__version__)')
if [ "$(cat "$dir/key" 2>/dev/null)" != "$key" ]; then
  rm -rf "$dir"
  "$py" onnx/tests/gen_conformance.py "$dir"
  "$py" onnx/tests/gen_ort_cases.py "$dir" 2>/dev/null
  echo "$key" >"$dir/key"
fi
# The bundled models through the exporter and onnxruntime (regenerated every run: cheap).
mkdir -p "$dir/exported"
for json in models/*.json; do
  name=$(basename "$json" .json)
  cargo run -q -p cryptonas-onnx --bin cryptonas-export-onnx -- "$json" "models/$name.safetensors" \
    "$dir/exported/$name.onnx"
done
"$py" onnx/tests/gen_ort_cases.py "$dir" --exported "$dir"/exported/*.onnx 2>/dev/null
rc=0
ONNX_CONFORMANCE_DIR="$PWD/$dir" cargo test -q -p cryptonas-onnx --test conformance -- --nocapture \
  >"$dir/log.txt" 2>&1 || rc=$?
grep -v '^PASS     node\|^refused  node' "$dir/log.txt" | tail -n 60
exit "$rc"
