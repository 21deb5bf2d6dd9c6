#!/usr/bin/env python3
"""Writes tests/fixtures/{llama-tiny,llama-tiny-mha,qwen2-tiny}/: small random
Llama-family checkpoints and the logits and attention weights that Hugging
Face `transformers` (PyTorch, eager attention, f32) computes for a few id
sequences. tests/golden_llama.rs checks our CPU forward against them.

Run by hand, not in CI (it needs torch and transformers from PyPI):
    python3 -m venv ~/.venvs/attnscope-torch
    ~/.venvs/attnscope-torch/bin/pip install torch transformers safetensors numpy
    ~/.venvs/attnscope-torch/bin/python tools/make_golden_llama.py

The three models cover, between them:
  llama-tiny      grouped KV heads (4 query heads over 2), untied head, f32,
                  llama3 rope_scaling (frequencies kept, smoothed and divided),
                  transformers 5's config.json (`rope_parameters`), T = 1, 7, 130
  llama-tiny-mha  full multi-head (4 over 4), tied head, bf16 weights sharded
                  over several files (model.safetensors.index.json); the
                  reference runs in f32 on the same bf16-rounded weights, so the
                  comparison is exact up to f32 arithmetic
  qwen2-tiny      Qwen2 (Q/K/V biases), 6 query heads over 2, tied, f32,
                  transformers 4's config.json (`rope_theta`, `rope_scaling`: null)

reference.json: {"versions", "cases": [{"ids", "logits" [T][V],
"attentions" [layer][head][T][i + 1]}]}: row i of each attention holds the
causal part (keys 0..=i); the masked rest is exactly 0.
"""
import json
import pathlib

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
SEED = 4321


def widen(model):
    """Wider weights than the default init: peaked attention, spread logits."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "q_proj" in name or "k_proj" in name:
                p.copy_(0.35 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))


def cases(model, vocab, lengths, seed):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for t in lengths:
        ids = torch.randint(0, vocab, (1, t), generator=gen)
        with torch.no_grad():
            result = model(ids, output_attentions=True)
        out.append({
            "ids": ids[0].tolist(),
            "logits": [[round(float(x), 6) for x in row] for row in result.logits[0]],
            "attentions": [[[[round(float(x), 7) for x in row[: i + 1]] for i, row in enumerate(head)]
                            for head in layer[0]] for layer in result.attentions],
        })
    return out


def write_reference(directory, model, vocab, lengths, seed):
    (directory / "generation_config.json").unlink(missing_ok=True)  # not read by the engine
    reference = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
                 "cases": cases(model, vocab, lengths, seed)}
    (directory / "reference.json").write_text(json.dumps(reference, separators=(",", ":")) + "\n")


def llama_tiny():
    config = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=96, vocab_size=96, max_position_embeddings=256, rms_norm_eps=1e-5,
                         tie_word_embeddings=False, attn_implementation="eager",
                         rope_scaling={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 4.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 32})
    model = LlamaForCausalLM(config).eval()
    widen(model)
    d = OUT / "llama-tiny"
    model.save_pretrained(d, safe_serialization=True)
    saved = json.loads((d / "config.json").read_text())
    assert saved["rope_parameters"]["rope_type"] == "llama3", saved
    write_reference(d, model, 96, [1, 7, 130], SEED + 1)


def llama_tiny_mha():
    config = LlamaConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         intermediate_size=80, vocab_size=80, max_position_embeddings=64, rms_norm_eps=1e-6,
                         rope_theta=500.0, tie_word_embeddings=True, attn_implementation="eager")
    model = LlamaForCausalLM(config).eval()
    widen(model)
    d = OUT / "llama-tiny-mha"
    rounded = {k: v.to(torch.bfloat16).to(torch.float32) for k, v in model.state_dict().items()}
    model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True, max_shard_size="20KB")
    assert (d / "model.safetensors.index.json").exists(), "expected a sharded checkpoint"
    # The reference: f32 arithmetic on exactly the bf16 weights the files hold,
    # in a fresh f32 model (`.to(bfloat16)` also rounds RoPE's inv_freq buffer).
    reference = LlamaForCausalLM(config).eval()
    reference.load_state_dict(rounded)
    write_reference(d, reference, 80, [1, 9, 40], SEED + 2)


def qwen2_tiny():
    config = Qwen2Config(hidden_size=48, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
                         intermediate_size=64, vocab_size=72, max_position_embeddings=64, rms_norm_eps=1e-6,
                         rope_theta=1000.0, tie_word_embeddings=True, attn_implementation="eager")
    model = Qwen2ForCausalLM(config).eval()
    widen(model)
    d = OUT / "qwen2-tiny"
    model.save_pretrained(d, safe_serialization=True)
    # The hub's files are transformers 4's form: rope_theta and rope_scaling at the top.
    saved = json.loads((d / "config.json").read_text())
    saved.pop("rope_parameters", None)
    saved["rope_theta"] = 1000.0
    saved["rope_scaling"] = None
    (d / "config.json").write_text(json.dumps(saved, indent=2) + "\n")
    write_reference(d, model, 72, [1, 12], SEED + 3)


def main():
    torch.manual_seed(SEED)
    llama_tiny()
    llama_tiny_mha()
    qwen2_tiny()
    print("wrote", OUT)


if __name__ == "__main__":
    main()
