#!/usr/bin/env python3
"""Trains the default model (GPT-2 architecture) on data/train.txt, resuming
from out/checkpoint.pt when it exists, and exports it in GPT-2 format.

    python3 tools/train/train.py                          # the shipped recipe (resumes), then export
    python3 tools/train/train.py --export-only            # export the last checkpoint
    python3 tools/train/train.py --tokens 2e5 --out /tmp/smoke   # a quick end-to-end check

--init-from DIR starts a new run from an exported model (continued training).

What it mixes in, for induction heads: with probability --synthetic-prob a
sequence is uniformly random tokens repeated end to end with a random period
(8..64) from a random phase; otherwise, with probability --repeat-prob a
training sequence gets a copy of one of its own spans, of random length
(8..48 tokens), placed after a random gap (0..32 tokens) at a random position;
with probability --random-repeat-prob the span is first replaced by uniformly
random tokens (so copying is the only way to predict the second occurrence).
Period and position are random, so the model must learn "find the earlier
occurrence and copy what followed", not a fixed look-back.

Exports to www/models/default/: config.json, model.safetensors (GPT-2 names,
Conv1D layout, f32, LM head tied to wte), tokenizer.json; writes
out/training.json with steps, tokens, wall time and the last losses.
"""
import argparse
import json
import math
import pathlib
import time

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import GPT2Config, GPT2LMHeadModel

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def encode(tokenizer, path):
    ids = []
    for line in path.read_text().splitlines():
        ids.extend(tokenizer.encode(line + "\n").ids)
    return np.array(ids, dtype=np.int32)


def batch(data, rng, size, ctx, repeat_prob, random_repeat_prob=0.0, vocab=1, synthetic_prob=0.0):
    starts = rng.integers(0, len(data) - ctx - 1, size)
    x = np.stack([data[s:s + ctx + 1] for s in starts]).copy()
    for row in x:
        if rng.random() < synthetic_prob:
            # A run of random tokens repeated end to end, from a random phase:
            # after the first period only copying predicts the next token.
            period = int(rng.integers(8, 65))
            phase = int(rng.integers(0, period))
            row[:] = np.tile(rng.integers(0, vocab, period), ctx // period + 3)[phase:phase + ctx + 1]
            continue
        u = rng.random()
        if u >= repeat_prob + random_repeat_prob:
            continue
        length = int(rng.integers(8, 49))
        gap = int(rng.integers(0, 33))
        if 2 * length + gap >= ctx:
            continue
        src = int(rng.integers(0, ctx + 1 - (2 * length + gap)))
        dst = src + length + gap
        if u < random_repeat_prob:
            row[src:src + length] = rng.integers(0, vocab, length)
        row[dst:dst + length] = row[src:src + length]
    x = torch.from_numpy(x).long()
    return x[:, :-1], x[:, 1:]


@torch.no_grad()
def evaluate(model, data, ctx, batches=20):
    model.eval()
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(batches):
        x, y = batch(data, rng, 16, ctx, 0.0)
        logits = model(x).logits
        losses.append(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1)).item())
    model.train()
    return float(np.mean(losses))


@torch.no_grad()
def probe(model, data, ctx, vocab, length=50, sequences=8):
    """The engine's head scores (src/engine/analysis.rs), computed in PyTorch to
    watch training: best previous-token score on held-out text, best induction
    score in layers >= 1 and the loss on the first and second copy of random
    sequences shown twice. The shipped numbers come from `attnscope eval`."""
    model.eval()
    rng = np.random.default_rng(7)
    x, _ = batch(data, rng, 8, ctx, 0.0)
    att = model(x, output_attentions=True).attentions  # layers × [B, H, T, T]
    i = torch.arange(1, x.size(1))
    prev = torch.stack([a[:, :, i, i - 1].mean(dim=(0, 2)) for a in att])  # [L, H]
    half = torch.from_numpy(rng.integers(0, vocab, (sequences, length))).long()
    ids = torch.cat([half, half], dim=1)
    out = model(ids, output_attentions=True)
    logp = torch.log_softmax(out.logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    first, second = -logp[:, :length - 1].mean().item(), -logp[:, length:].mean().item()
    j = torch.arange(0, length - 1)
    ind = torch.stack([a[:, :, length + j, j + 1].mean(dim=(0, 2)) for a in out.attentions])
    model.train()
    return {"prev": round(prev.max().item(), 3), "induction": round(ind[1:].max().item(), 3),
            "copy1": round(first, 2), "copy2": round(second, 2)}


def compact_tokenizer(text):
    """The tokenizer with its merges as "a b" strings, the older of the two
    forms `tokenizers` reads (byte-level pieces never hold a space): ~1 kB
    less of the first visit, gzipped, than ["a", "b"] pairs."""
    doc = json.loads(text)
    merges = doc["model"].get("merges", [])
    if all(isinstance(m, list) and len(m) == 2 and " " not in m[0] + m[1] for m in merges):
        doc["model"]["merges"] = [f"{a} {b}" for a, b in merges]
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def export(model, config, tokenizer_path, out_dir, info):
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k.removeprefix("transformer."): v.detach().float().contiguous()
             for k, v in model.state_dict().items() if k != "lm_head.weight" and not k.endswith(".attn.bias")}
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    keys = ["n_layer", "n_head", "n_embd", "n_positions", "vocab_size", "layer_norm_epsilon", "activation_function"]
    cfg = {k: getattr(config, k) for k in keys} | {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out_dir / "tokenizer.json").write_text(compact_tokenizer(tokenizer_path.read_text()))
    (HERE / "out").mkdir(exist_ok=True)
    print("exported to", out_dir, json.dumps(info))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=float, default=14e6, help="total training tokens")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--repeat-prob", type=float, default=0.1)
    p.add_argument("--random-repeat-prob", type=float, default=0.1)
    p.add_argument("--synthetic-prob", type=float, default=0.3,
                   help="probability that a sequence is random tokens repeated with a random period (8..64)")
    p.add_argument("--eval-every", type=int, default=500, help="steps between validation loss and probe")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=pathlib.Path, default=HERE / "out")
    p.add_argument("--export-to", type=pathlib.Path, default=ROOT / "www" / "models" / "default")
    p.add_argument("--export-only", action="store_true")
    p.add_argument("--init-from", type=pathlib.Path, default=None,
                   help="start from an exported model directory (model.safetensors in GPT-2 names) instead of "
                        "random weights, when out/ has no checkpoint yet; the optimizer starts fresh")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    tok_path = HERE / "data" / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(tok_path))
    config = GPT2Config(n_layer=args.layers, n_head=args.heads, n_embd=args.d, n_positions=args.ctx,
                        vocab_size=tokenizer.get_vocab_size(), activation_function="gelu_new",
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    config._attn_implementation = "eager"  # the probe reads attention weights
    model = GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.1)
    tokens_per_step = args.batch * args.ctx
    total_steps = int(args.tokens // tokens_per_step)
    ckpt = args.out / "checkpoint.pt"
    state = {"step": 0, "elapsed": 0.0, "log": []}
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        state = saved["state"]
        print(f"resumed at step {state['step']}")
    elif args.init_from is not None:
        from safetensors.torch import load_file
        saved = load_file(str(args.init_from / "model.safetensors"))
        missing, unexpected = model.transformer.load_state_dict(saved, strict=False)
        missing = [k for k in missing if not k.endswith(".attn.bias")]
        if missing or unexpected:
            raise SystemExit(f"--init-from {args.init_from}: missing {missing}, unexpected {unexpected}")
        model.tie_weights()
        print(f"initialised from {args.init_from}")
    if args.export_only:
        export(model, config, tok_path, args.export_to, state)
        return

    train = encode(tokenizer, HERE / "data" / "train.txt")
    val = encode(tokenizer, HERE / "data" / "val.txt")
    print(f"train {len(train):,} tokens, val {len(val):,}; {total_steps} steps of {tokens_per_step}")
    rng = np.random.default_rng(args.seed + state["step"])
    warmup = 200
    model.train()
    t0 = time.time() - state["elapsed"]
    while state["step"] < total_steps:
        step = state["step"]
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / total_steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = batch(train, rng, args.batch, args.ctx, args.repeat_prob, args.random_repeat_prob,
                     config.vocab_size, args.synthetic_prob)
        logits = model(x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state["step"] = step + 1
        if state["step"] % 50 == 0:
            state["elapsed"] = time.time() - t0
            rate = state["step"] * tokens_per_step / state["elapsed"]
            entry = {"step": state["step"], "tokens": state["step"] * tokens_per_step, "loss": round(loss.item(), 4),
                     "lr": lr, "tokens_per_s": round(rate), "elapsed_s": round(state["elapsed"])}
            if state["step"] % args.eval_every == 0 or state["step"] == total_steps:
                entry["val_loss"] = round(evaluate(model, val, args.ctx), 4)
                entry |= probe(model, val, args.ctx, config.vocab_size)
            state["log"].append(entry)
            print(json.dumps(entry), flush=True)
        if state["step"] % 250 == 0 or state["step"] == total_steps:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state}, ckpt.with_suffix(".tmp"))
            ckpt.with_suffix(".tmp").replace(ckpt)
    state["elapsed"] = time.time() - t0
    info = {"steps": state["step"], "tokens": state["step"] * tokens_per_step, "wall_s": round(state["elapsed"]),
            "val_loss": evaluate(model, val, args.ctx, batches=50), "args": {k: str(v) for k, v in vars(args).items()}}
    (args.out / "training.json").write_text(json.dumps(info | {"log": state["log"]}, indent=1) + "\n")
    export(model, config, tok_path, args.export_to, info)


if __name__ == "__main__":
    main()
