#!/usr/bin/env python3
"""PyTorch eager on the shapes `attnscope bench` times, on this machine: the
peer for the native CPU engine (issue 19). A plain GPT-2 forward (learned
positions, LayerNorm, GELU-tanh MLP, causal softmax attention, tied LM head),
random weights, float32, one sequence; like our trace it returns every layer's
attention weights along with the logits.

Setup (PyTorch from PyPI, never committed):
    python3 -m venv ~/.venvs/attnscope-torch
    ~/.venvs/attnscope-torch/bin/pip install torch numpy
Run next to the Rust figures, in one go (tools/bench_cpu.sh does both):
    ~/.venvs/attnscope-torch/bin/python tools/bench_torch.py --t 16,128 --threads 1,2
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = {
    # name: (layers, heads, d, vocab, positions)
    "gpt2-small": (12, 12, 768, 50257, 1024),
    "tiny": (2, 4, 128, 4096, 128),
}


def weights(layers, d, vocab, positions, seed=1):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.02
    blocks = [
        dict(
            ln1=(torch.ones(d), torch.zeros(d)),
            qkv=(r(d, 3 * d), torch.zeros(3 * d)),
            proj=(r(d, d), torch.zeros(d)),
            ln2=(torch.ones(d), torch.zeros(d)),
            fc=(r(d, 4 * d), torch.zeros(4 * d)),
            out=(r(4 * d, d), torch.zeros(d)),
        )
        for _ in range(layers)
    ]
    return dict(wte=r(vocab, d), wpe=r(positions, d), blocks=blocks, lnf=(torch.ones(d), torch.zeros(d)))


def forward(w, ids, heads):
    t = ids.shape[0]
    d = w["wte"].shape[1]
    dh = d // heads
    x = w["wte"][ids] + w["wpe"][:t]
    mask = torch.ones(t, t, dtype=torch.bool).triu(1)
    attentions = []
    for b in w["blocks"]:
        h = F.layer_norm(x, (d,), *b["ln1"], 1e-5)
        qkv = torch.addmm(b["qkv"][1], h, b["qkv"][0])
        q, k, v = (qkv[:, i * d : (i + 1) * d].view(t, heads, dh).transpose(0, 1) for i in range(3))
        scores = (q @ k.transpose(1, 2)) / math.sqrt(dh)
        weights_ = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        attentions.append(weights_)
        o = (weights_ @ v).transpose(0, 1).reshape(t, d)
        x = x + torch.addmm(b["proj"][1], o, b["proj"][0])
        h = F.layer_norm(x, (d,), *b["ln2"], 1e-5)
        h = F.gelu(torch.addmm(b["fc"][1], h, b["fc"][0]), approximate="tanh")
        x = x + torch.addmm(b["out"][1], h, b["out"][0])
    x = F.layer_norm(x, (d,), *w["lnf"], 1e-5)
    return x @ w["wte"].T, attentions


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gpt2-small", choices=sorted(SHAPES))
    ap.add_argument("--t", default="16,128")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    layers, heads, d, vocab, positions = SHAPES[args.model]
    w = weights(layers, d, vocab, positions)
    print(f"PyTorch {torch.__version__} eager, {args.model}: {layers} layers, {heads} heads, d={d}, vocab {vocab}; "
          f"median of {args.repeat} runs (one warm-up)")
    print(f"  {'T':>5}  {'threads':>7}  {'forward ms':>10}")
    with torch.inference_mode():
        for t in map(int, args.t.split(",")):
            ids = torch.arange(t) * 7919 % vocab  # attnscope bench's ids
            for threads in map(int, args.threads.split(",")):
                torch.set_num_threads(threads)
                forward(w, ids, heads)
                times = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    forward(w, ids, heads)
                    times.append((time.perf_counter() - start) * 1e3)
                print(f"  {t:>5}  {threads:>7}  {statistics.median(times):>10.2f}")


if __name__ == "__main__":
    main()
