#!/usr/bin/env bash
# Copies one CIFAR-10 test image per class (file 0000 of each class folder, unchanged JPEG bytes)
# from the shared archive into www/samples/ for the demo page.
# Usage: scripts/extract-samples.sh [path/to/cifar10-jpeg.tar.gz]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
archive="${1:-$root/../shared/data/cifar10-jpeg.tar.gz}"
out="$root/www/samples"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
classes=(airplane automobile bird cat deer dog frog horse ship truck)
members=()
for c in "${classes[@]}"; do members+=("cifar10-jpeg/test/$c/0000.jpg"); done
tar -xzf "$archive" -C "$tmp" "${members[@]}"
mkdir -p "$out"
for c in "${classes[@]}"; do cp "$tmp/cifar10-jpeg/test/$c/0000.jpg" "$out/$c.jpg"; done
echo "wrote ${#classes[@]} samples to $out"
