#!/usr/bin/env python3
"""Cached generation of SmolLM2-135M-Instruct, side by side on this machine:
our native CPU engine (`attnscope bench --generate`) against PyTorch eager
`transformers` (LlamaForCausalLM, eager attention, f32, KV cache), same
weights (the GGUF from tools/get_smollm2.py, which both dequantize to f32),
same thread count (2), same prompt length (16) and number of new tokens (32).

    cargo build --release
    ~/.venvs/attnscope-torch/bin/python tools/bench_smollm2.py [--steps 32] [--repeat 3]

Each side reports the median ms per generated token over `repeat` runs; the
ratio is PyTorch's time over ours (above 1: ours is faster).
"""
import argparse
import re
import statistics
import subprocess
import sys
import time
import pathlib

import torch
from transformers import AutoModelForCausalLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import get_smollm2  # noqa: E402

PROMPT = 16


def torch_ms_per_token(gguf, steps, repeat, threads):
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    vocab = model.config.vocab_size
    # The ids `attnscope bench` uses: i·7919 mod vocab.
    ids = [(i * 7919) % vocab for i in range(PROMPT + steps)]
    times = []
    for r in range(repeat + 1):
        with torch.no_grad():
            out = model(torch.tensor([ids[:PROMPT]]), use_cache=True)
            past = out.past_key_values
            start = time.perf_counter()
            for i in range(PROMPT, PROMPT + steps):
                out = model(torch.tensor([[ids[i]]]), past_key_values=past, use_cache=True)
                past = out.past_key_values
            ms = (time.perf_counter() - start) * 1e3 / steps
        if r > 0:  # the first run warms up
            times.append(ms)
    return statistics.median(times)


def ours_ms_per_token(gguf, steps, repeat):
    cli = ROOT / "target" / "release" / "attnscope"
    out = subprocess.run([str(cli), "bench", "--model", str(gguf), "--t", "16", "--generate", str(steps),
                          "--repeat", str(repeat)], check=True, capture_output=True, text=True).stdout
    print(out.rstrip())
    found = dict(re.findall(r"(\d) thread\(s\): ([\d.]+) ms/token", out))
    return float(found["2"]), float(found["1"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    get_smollm2.main()
    gguf = get_smollm2.cache_dir() / "smollm2" / get_smollm2.GGUF
    ours2, ours1 = ours_ms_per_token(gguf, args.steps, args.repeat)
    theirs2 = torch_ms_per_token(gguf, args.steps, args.repeat, 2)
    theirs1 = torch_ms_per_token(gguf, args.steps, args.repeat, 1)
    print(f"PyTorch {torch.__version__} eager, 2 threads: {theirs2:.2f} ms/token; 1 thread: {theirs1:.2f} ms/token")
    print(f"attnscope native CPU, 2 threads: {ours2:.2f} ms/token; 1 thread: {ours1:.2f} ms/token")
    print(f"ratio (PyTorch ms / ours), 2 threads: {theirs2 / ours2:.2f}x; 1 thread: {theirs1 / ours1:.2f}x")


if __name__ == "__main__":
    main()
