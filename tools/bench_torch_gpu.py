#!/usr/bin/env python3
"""PyTorch eager on a GPU (CUDA) on the shapes `attnscope bench --backend gpu
--smollm2 --gpt2-small` times: the peer for the GPU figures of issue 15, run in
the same session on the same machine as our native wgpu build.

Both families in plain PyTorch, float32, random weights, one sequence:
SmolLM2-135M's shape (Llama: RMSNorm, RoPE θ 100000 on rotated halves, 9
query heads over 3 KV heads of 64, SwiGLU, tied head) and GPT-2 small's
(learned positions, LayerNorm, GELU-tanh MLP, tied head). Per T, median of
--repeat after one warm-up, each timing ending with the top 10 next tokens
copied to the host (as ours reads them back):

  forward    all T rows, scaled-dot-product attention (no weights kept)
  append     one new token with T−1 in a KV cache, SDPA
  keystroke  one new token with T−1 cached, the attention weights of its row
             in every head and layer materialised (softmax of the scores),
             the peer of our traced append, which keeps every stage

Run (any machine with PyTorch and CUDA; falls back to the CPU with a warning):
    python3 tools/bench_torch_gpu.py --t 128,512,2048
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

# name: family, layers, heads, kv heads, head dim, d, inner, vocab, positions
SHAPES = {
    "smollm2": ("llama", 30, 9, 3, 64, 576, 1536, 49152, 8192),
    "gpt2-small": ("gpt2", 12, 12, 12, 64, 768, 3072, 50257, 1024),
}


class Model:
    def __init__(self, name, device, seed=1):
        fam, layers, heads, kv, dh, d, inner, vocab, positions = SHAPES[name]
        self.fam, self.heads, self.kv, self.dh, self.d, self.positions = fam, heads, kv, dh, d, positions
        g = torch.Generator().manual_seed(seed)
        r = lambda *shape: (torch.randn(*shape, generator=g) * 0.02).to(device)
        ones, zeros = (lambda n: torch.ones(n, device=device)), (lambda n: torch.zeros(n, device=device))
        self.wte = r(vocab, d)
        self.wpe = r(positions, d) if fam == "gpt2" else None
        qkv = (heads + 2 * kv) * dh
        self.blocks = [
            dict(n1=(ones(d), zeros(d)), qkv=(r(d, qkv), zeros(qkv)), o=(r(heads * dh, d), zeros(d)),
                 n2=(ones(d), zeros(d)),
                 up=(r(d, inner if fam == "gpt2" else 2 * inner), zeros(inner if fam == "gpt2" else 2 * inner)),
                 down=(r(inner, d), zeros(d)))
            for _ in range(layers)
        ]
        self.nf = (ones(d), zeros(d))
        inv = 1.0 / (100000.0 ** (torch.arange(0, dh, 2, device=device).float() / dh))
        ang = torch.arange(positions, device=device).float()[:, None] * inv[None, :]
        self.cos, self.sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)

    def norm(self, x, w):
        if self.fam == "gpt2":
            return F.layer_norm(x, (self.d,), *w, 1e-5)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w[0]

    def rope(self, x, pos):
        if self.fam == "gpt2":
            return x
        c, s = self.cos[pos][None], self.sin[pos][None]
        h = x.shape[-1] // 2
        return x * c + torch.cat([-x[..., h:], x[..., :h]], -1) * s

    def step(self, ids, start, cache, weights_out):
        """Rows start.. of the sequence whose first `start` rows are in `cache` (list of [K, V] per layer,
        [kv, cap, dh] each); returns the last row's logits."""
        t = ids.shape[0]
        pos = torch.arange(start, start + t, device=ids.device)
        x = self.wte[ids] + (self.wpe[pos] if self.wpe is not None else 0)
        hq, hk, dh = self.heads, self.kv, self.dh
        for b, (kc, vc) in zip(self.blocks, cache):
            h = self.norm(x, b["n1"])
            qkv = torch.addmm(b["qkv"][1], h, b["qkv"][0])
            q, k, v = qkv.split([hq * dh, hk * dh, hk * dh], -1)
            q = self.rope(q.view(t, hq, dh).transpose(0, 1), pos)
            k = self.rope(k.view(t, hk, dh).transpose(0, 1), pos)
            kc[:, start : start + t] = k
            vc[:, start : start + t] = v.view(t, hk, dh).transpose(0, 1)
            keys = kc[:, : start + t].repeat_interleave(hq // hk, 0)
            vals = vc[:, : start + t].repeat_interleave(hq // hk, 0)
            if weights_out:
                scores = (q @ keys.transpose(1, 2)) / math.sqrt(dh)
                mask = torch.ones(t, start + t, dtype=torch.bool, device=ids.device).triu(start + 1)
                w = torch.softmax(scores.masked_fill(mask, float("-inf")), -1)
                o = w @ vals
            else:
                o = F.scaled_dot_product_attention(q, keys, vals, is_causal=start == 0 and t > 1)
            x = x + torch.addmm(b["o"][1], o.transpose(0, 1).reshape(t, hq * dh), b["o"][0])
            h = self.norm(x, b["n2"])
            u = torch.addmm(b["up"][1], h, b["up"][0])
            if self.fam == "gpt2":
                u = F.gelu(u, approximate="tanh")
            else:
                gate, up = u.chunk(2, -1)
                u = F.silu(gate) * up
            x = x + torch.addmm(b["down"][1], u, b["down"][0])
        return self.norm(x[-1:], self.nf) @ self.wte.T

    def cache(self, cap, device):
        return [[torch.zeros(self.kv, cap, self.dh, device=device) for _ in range(2)] for _ in self.blocks]


def timed(f, device, repeat):
    f()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="smollm2,gpt2-small")
    ap.add_argument("--t", default="128,512,2048")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda":
        print("warning: no CUDA device; these are CPU figures")
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 as ours computes it
    torch.backends.cudnn.allow_tf32 = False
    what = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"PyTorch {torch.__version__} eager on {what}, float32 (no TF32); median of {args.repeat} runs, one warm-up")
    with torch.inference_mode():
        for name in args.models.split(","):
            m = Model(name, device)
            print(f"{name}: ms per figure, each ending with the top-10 next tokens on the host")
            print(f"  {'T':>5}  {'forward':>9}  {'append':>9}  {'keystroke':>9}")
            for t in (int(x) for x in args.t.split(",")):
                if t < 2 or t > m.positions:
                    print(f"  {t:>5}  skipped: the context holds {m.positions}")
                    continue
                ids = torch.tensor([(i * 7919) % SHAPES[name][7] for i in range(t)], device=device)
                cache = m.cache(t, device)
                top = lambda logits: torch.topk(logits[0], 10).indices.cpu()
                fwd = timed(lambda: top(m.step(ids, 0, cache, False)), device, args.repeat)
                m.step(ids[:-1], 0, cache, False)  # T−1 rows cached; each append rewrites row T−1
                app = timed(lambda: top(m.step(ids[-1:], t - 1, cache, False)), device, args.repeat)
                key = timed(lambda: top(m.step(ids[-1:], t - 1, cache, True)), device, args.repeat)
                print(f"  {t:>5}  {fwd:>9.2f}  {app:>9.2f}  {key:>9.2f}")


if __name__ == "__main__":
    main()
