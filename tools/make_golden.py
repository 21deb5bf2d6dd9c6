#!/usr/bin/env python3
"""Writes tests/fixtures/gpt2-tiny*/: a small random GPT-2 and the logits and
attention weights that Hugging Face `transformers` (PyTorch, eager attention)
computes for a few id sequences. The Rust tests check our CPU forward against
these numbers: an independent implementation, not our own code.

Run by hand, not in CI (it needs torch and transformers from PyPI):
    python3 -m venv .venv && .venv/bin/pip install torch transformers safetensors numpy
    .venv/bin/python tools/make_golden.py

Writes:
  gpt2-tiny/{config.json, model.safetensors}        f32, as save_pretrained writes it
                                                    ("transformer." prefix, tied LM head)
  gpt2-tiny-f16/, gpt2-tiny-bf16/                    the same weights in f16 and bf16
  gpt2-tiny/reference.json                          {"versions", "cases": [{"ids", "logits" [T][V],
                                                    "attentions" [layer][head][T][T]}]}
"""
import json
import pathlib

import torch
import transformers
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
SEED = 1234


def main():
    torch.manual_seed(SEED)
    config = GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=64, vocab_size=512,
                        activation_function="gelu_new", layer_norm_epsilon=1e-5,
                        attn_implementation="eager")
    model = GPT2LMHeadModel(config).eval()
    # GPT-2's init (std 0.02) gives near-uniform attention and tiny logits, which
    # would make agreement easy; wider weights give peaked, telling patterns.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or name.startswith("transformer.ln_f"):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            elif "c_attn.weight" in name:
                p.copy_(0.3 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))

    f32_dir = OUT / "gpt2-tiny"
    model.save_pretrained(f32_dir, safe_serialization=True)
    for dtype, name in [(torch.float16, "gpt2-tiny-f16"), (torch.bfloat16, "gpt2-tiny-bf16")]:
        d = OUT / name
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.to(dtype).contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
        save_file(state, str(d / "model.safetensors"), metadata={"format": "pt"})
        (d / "config.json").write_text((f32_dir / "config.json").read_text())

    gen = torch.Generator().manual_seed(SEED + 1)
    cases = []
    for t in [1, 5, 23, 64]:
        ids = torch.randint(0, config.vocab_size, (1, t), generator=gen)
        with torch.no_grad():
            out = model(ids, output_attentions=True)
        cases.append({
            "ids": ids[0].tolist(),
            "logits": [[round(float(x), 6) for x in row] for row in out.logits[0]],
            "attentions": [[[[round(float(x), 7) for x in row] for row in head] for head in layer[0]]
                           for layer in out.attentions],
        })
    reference = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
                 "cases": cases}
    (f32_dir / "reference.json").write_text(json.dumps(reference, separators=(",", ":")) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
