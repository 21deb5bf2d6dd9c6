#!/usr/bin/env python3
"""Cross-checks our SmolLM2 (the GGUF from tools/get_smollm2.py, dequantized by
our own reader) against Hugging Face `transformers` loading the same GGUF file
(its own dequantization through the `gguf` package, LlamaForCausalLM, eager
attention, f32), and writes the fixture tests/smollm2.rs compares with:

    tests/fixtures/smollm2/reference.json
      {"versions", "gguf_sha256", "cases": [{"prompt", "ids",
        "last": {"ids": [...], "logits": [...]}   100 logits of the last position
                                                   (its top 50 and 50 spread ids),
        "argmax": [...], "max_logit": [...]}]}    every position's top id and logit

With the CLI built (cargo build --release), it also runs `attnscope trace
--logits all` on each prompt and prints the largest difference over every
logit of every position: the figure the model card records.

Run by hand (needs torch, transformers, gguf in the venv):
    ~/.venvs/attnscope-torch/bin/pip install gguf==0.19.0
    ~/.venvs/attnscope-torch/bin/python tools/crosscheck_smollm2.py
"""
import json
import pathlib
import subprocess
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import get_smollm2  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "smollm2" / "reference.json"
CLI = ROOT / "target" / "release" / "attnscope"
PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. The quick brown",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
]


def main():
    get_smollm2.main()
    gguf = get_smollm2.cache_dir() / "smollm2" / get_smollm2.GGUF
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    cases, worst = [], 0.0
    for prompt in PROMPTS:
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].numpy()
        last = logits[-1]
        top = np.argsort(-last)[:50]
        spread = np.arange(0, last.shape[0], last.shape[0] // 50)[:50]
        chosen = sorted(set(top.tolist()) | set(spread.tolist()))
        cases.append({
            "prompt": prompt, "ids": ids,
            "last": {"ids": chosen, "logits": [round(float(last[i]), 5) for i in chosen]},
            "argmax": logits.argmax(-1).tolist(),
            "max_logit": [round(float(x), 5) for x in logits.max(-1)],
        })
        if CLI.exists():
            out = subprocess.run([str(CLI), "trace", "--model", str(gguf), "--ids", ",".join(map(str, ids)),
                                  "--logits", "all"], check=True, capture_output=True, text=True).stdout
            ours = np.array(json.loads(out)["logits"], dtype=np.float32)
            diff = float(np.abs(ours - logits).max())
            worst = max(worst, diff)
            print(f"{len(ids):3} tokens: max |ours - transformers| over all {logits.size} logits: {diff:.2e}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    reference = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__},
                 "gguf_sha256": get_smollm2.GGUF_SHA256, "cases": cases}
    OUT.write_text(json.dumps(reference, separators=(",", ":")) + "\n")
    print("wrote", OUT, f"(worst difference {worst:.2e})" if CLI.exists() else "(CLI not built: no comparison)")


if __name__ == "__main__":
    main()
