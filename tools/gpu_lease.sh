#!/usr/bin/env bash
# The real-GPU figures of issues 15 and 19 in one short run on a lent GPU
# machine (the `device` tool: no network there, a few minutes of device time
# per task, so everything is built here and carried).
#
#   bash tools/gpu_lease.sh prepare   # here: release binaries and the Vulkan
#                                     # loader's Debian packages into .gpu-lease/
#   bash tools/gpu_lease.sh run       # there (carry .gpu-lease): writes to $OUT
#
# `run` prints and keeps in $OUT (or ./gpu-lease-out): the adapter, then
# `attnscope bench --backend gpu` on SmolLM2-135M's and GPT-2 small's shapes
# (forward, append, the page's keystroke, GPU ms per kernel, the one-row
# matmuls and both flash kernels), PyTorch eager on CUDA on the same shapes
# in the same run (tools/bench_torch_gpu.py, where $ATTNSCOPE_PYTHON or
# python3 has torch), and
# the GPU test binaries against the CPU reference. `run` also works here on
# lavapipe, a CPU emulation whose times say nothing about GPUs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LEASE=.gpu-lease
TESTS=(kernels_attention kernels_attention_gqa kernels_matmul kernels_matmul16 kernels_llama kernels_rows gpu_forward gpu_forward_llama
  gpu_one_block gpu_head_finder)
# 2,048: SmolLM2 with one block's T×T matrices at a time (GPT-2 small's context ends at 1,024: its row says so).
T=${ATTNSCOPE_LEASE_T:-16,128,512,1024,2048}

prepare() {
  rm -rf "$LEASE" && mkdir -p "$LEASE/bin" "$LEASE/debs"
  cargo build --release --bin attnscope
  cp target/release/attnscope "$LEASE/bin/"
  # The test binaries, found from cargo's own report of what it built.
  local args=()
  for t in "${TESTS[@]}"; do args+=(--test "$t"); done
  cargo test --release --no-run --message-format=json "${args[@]}" \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])' \
    | while read -r name exe; do cp "$exe" "$LEASE/bin/$name"; done
  strip "$LEASE"/bin/*
  # The Vulkan loader (the lent machine has NVIDIA's driver and its ICD file, not always the loader).
  (cd "$LEASE/debs" && apt-get download libvulkan1 >/dev/null)
  tar -C "$LEASE" -cJf "$LEASE/bin.tar.xz" bin && rm -rf "$LEASE/bin"
  du -sh "$LEASE"
  echo "carry $LEASE (64 MiB at most in all); on the machine: bash tools/gpu_lease.sh run"
}

run() {
  local out="${OUT:-$ROOT/gpu-lease-out}"
  mkdir -p "$out"
  [ -f "$LEASE/bin.tar.xz" ] || { echo "no $LEASE/bin.tar.xz: run 'bash tools/gpu_lease.sh prepare' first" >&2; exit 1; }
  tar -C "$LEASE" -xJf "$LEASE/bin.tar.xz"
  if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
    for f in "$LEASE"/debs/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$icd" ] && export VK_DRIVER_FILES="$icd"
  export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/attnscope-xdg-$(id -u)}"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
  # The test binaries read fixtures under the path they were built in.
  local built=/work/main
  if [ "$ROOT" != "$built" ] && [ ! -e "$built" ]; then mkdir -p "$(dirname "$built")" && ln -s "$ROOT" "$built"; fi
  local bin="$LEASE/bin"
  "$bin/attnscope" gpu-info | tee "$out/adapter.txt"
  "$bin/attnscope" bench --backend gpu --model www/models/default --smollm2 --gpt2-small --no-sweep \
    --t "$T" --repeat 7 --matmul 1024 2>&1 | tee "$out/bench.txt" || true
  local py="${ATTNSCOPE_PYTHON:-python3}" # a Python with torch (CUDA)
  if "$py" -c 'import torch' 2>/dev/null; then
    "$py" tools/bench_torch_gpu.py --t "$T" --repeat 7 2>&1 | tee "$out/torch.txt" || true
  else
    echo "no torch in $py (ATTNSCOPE_PYTHON names another): the PyTorch peer did not run" | tee "$out/torch.txt"
  fi
  for t in "${TESTS[@]}"; do
    echo "== $t"
    "$bin/$t" 2>&1 | grep -E '^test |test result|panicked' || true
  done | tee "$out/tests.txt"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: bash tools/gpu_lease.sh prepare|run" >&2; exit 2 ;;
esac
