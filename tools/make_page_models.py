#!/usr/bin/env python3
"""Writes the models the browser tests open "from the hub" (tests/e2e/hub_server.mjs
serves this directory as /{org}/{name}/resolve/{revision}/{file}):

    test/gpt2-small-random/    GPT-2 small's shape (12 layers x 12 heads, d 768,
                               vocab 50257, context 1024), random F16 weights
                               (~250 MB), GPT-2's tokenizer (www/tokenizers/gpt2)
    test/llama-tiny-gqa/       a tiny random Llama: 2 layers, 4 query heads
                               sharing 2 KV heads, d 64, F16; the built-in
                               model's tokenizer (vocab 4096)
    test/llama-tiny-sharded/   the same weights split into two shards + index
    test/bad-truncated/        llama-tiny-gqa with its weights cut short
    test/bad-shapes/           llama-tiny-gqa whose config says hidden_size 96
    test/bad-arch/             llama-tiny-gqa with model_type "mamba"
    HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf
                               a link to tools/get_smollm2.py's file, when it is there

    python3 tools/make_page_models.py            # prints the directory
    python3 tools/make_page_models.py --small    # everything but the GPT-2-sized model

Plain Python 3 (no numpy): the random values are 16-bit patterns made from
random.Random(seed).randbytes with the exponent bounded (|w| between about
0.004 and 0.06, either sign), so the files are the same on every machine.
The directory is $ATTNSCOPE_CACHE/page-models (default ~/.cache/attnscope);
nothing goes into git; a model whose files are there is not written again.
"""
import json
import os
import pathlib
import random
import shutil
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
VERSION = "2"  # bump when what is written changes (2: the minified default tokenizer)


def cache_dir():
    base = pathlib.Path(os.environ.get("ATTNSCOPE_CACHE", pathlib.Path.home() / ".cache" / "attnscope"))
    return base / "page-models"


# High byte of a little-endian F16: sign, 5 exponent bits, 2 mantissa bits.
# Exponents 7..10 give magnitudes 2^-8..2^-4 (times 1..2).
HIGH = bytes((b & 0x80) | ((7 + (b >> 2) % 4) << 2) | (b & 0x03) for b in range(256))
ONE_F16 = struct.pack("<e", 1.0)


def random_f16(rng, count):
    low = rng.randbytes(count)
    high = rng.randbytes(count).translate(HIGH)
    out = bytearray(2 * count)
    out[0::2] = low
    out[1::2] = high
    return bytes(out)


def tensor_bytes(rng, name, shape):
    count = 1
    for d in shape:
        count *= d
    if len(shape) == 1:
        # Norm gains are 1, biases 0.
        return ONE_F16 * count if ("ln" in name or "norm" in name) and name.endswith("weight") else bytes(2 * count)
    return random_f16(rng, count)


def write_safetensors(path, tensors):
    """tensors: [(name, shape, bytes)] written as F16."""
    header, at = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, data in tensors:
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [at, at + len(data)]}
        at += len(data)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for _, _, data in tensors:
            f.write(data)
    tmp.replace(path)


def gpt2_small(dir):
    rng = random.Random(1)
    d, v, p, layers = 768, 50257, 1024, 12
    shapes = [("wte.weight", (v, d)), ("wpe.weight", (p, d))]
    for i in range(layers):
        shapes += [
            (f"h.{i}.ln_1.weight", (d,)), (f"h.{i}.ln_1.bias", (d,)),
            (f"h.{i}.attn.c_attn.weight", (d, 3 * d)), (f"h.{i}.attn.c_attn.bias", (3 * d,)),
            (f"h.{i}.attn.c_proj.weight", (d, d)), (f"h.{i}.attn.c_proj.bias", (d,)),
            (f"h.{i}.ln_2.weight", (d,)), (f"h.{i}.ln_2.bias", (d,)),
            (f"h.{i}.mlp.c_fc.weight", (d, 4 * d)), (f"h.{i}.mlp.c_fc.bias", (4 * d,)),
            (f"h.{i}.mlp.c_proj.weight", (4 * d, d)), (f"h.{i}.mlp.c_proj.bias", (d,)),
        ]
    shapes += [("ln_f.weight", (d,)), ("ln_f.bias", (d,))]
    write_safetensors(dir / "model.safetensors", [(n, s, tensor_bytes(rng, n, s)) for n, s in shapes])
    config = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": layers, "n_head": 12, "n_embd": d,
        "n_positions": p, "n_ctx": p, "vocab_size": v, "layer_norm_epsilon": 1e-5,
        "activation_function": "gelu_new", "torch_dtype": "float16",
    }
    (dir / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copy(ROOT / "www/tokenizers/gpt2/tokenizer.json", dir / "tokenizer.json")


LLAMA_CONFIG = {
    "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "max_position_embeddings": 256, "vocab_size": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "float16",
}


def llama_tensors():
    rng = random.Random(2)
    c = LLAMA_CONFIG
    d, m, v, hd = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["head_dim"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    shapes = [("model.embed_tokens.weight", (v, d))]
    for i in range(c["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        shapes += [
            (pre + "input_layernorm.weight", (d,)),
            (pre + "self_attn.q_proj.weight", (q, d)), (pre + "self_attn.k_proj.weight", (kv, d)),
            (pre + "self_attn.v_proj.weight", (kv, d)), (pre + "self_attn.o_proj.weight", (d, q)),
            (pre + "post_attention_layernorm.weight", (d,)),
            (pre + "mlp.gate_proj.weight", (m, d)), (pre + "mlp.up_proj.weight", (m, d)),
            (pre + "mlp.down_proj.weight", (d, m)),
        ]
    shapes += [("model.norm.weight", (d,)), ("lm_head.weight", (v, d))]
    return [(n, s, tensor_bytes(rng, n, s)) for n, s in shapes]


def llama_dir(dir, config=LLAMA_CONFIG):
    write_safetensors(dir / "model.safetensors", llama_tensors())
    (dir / "config.json").write_text(json.dumps(config, indent=2))
    shutil.copy(ROOT / "www/models/default/tokenizer.json", dir / "tokenizer.json")


def llama_sharded(dir):
    tensors = llama_tensors()
    half = len(tensors) // 2
    weight_map = {}
    for k, part in enumerate([tensors[:half], tensors[half:]]):
        name = f"model-0000{k + 1}-of-00002.safetensors"
        write_safetensors(dir / name, part)
        weight_map.update({n: name for n, _, _ in part})
    (dir / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (dir / "config.json").write_text(json.dumps(LLAMA_CONFIG, indent=2))
    shutil.copy(ROOT / "www/models/default/tokenizer.json", dir / "tokenizer.json")


def bad_truncated(dir):
    llama_dir(dir)
    path = dir / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def bad_shapes(dir):
    llama_dir(dir, {**LLAMA_CONFIG, "hidden_size": 96})


def bad_arch(dir):
    llama_dir(dir, {**LLAMA_CONFIG, "model_type": "mamba", "architectures": ["MambaForCausalLM"]})


def make(out, name, build):
    dir = out / name
    stamp = dir / ".complete"
    if stamp.exists() and stamp.read_text() == VERSION:
        return
    if dir.exists():
        shutil.rmtree(dir)
    dir.mkdir(parents=True)
    build(dir)
    stamp.write_text(VERSION)


def main():
    small = "--small" in sys.argv[1:]
    out = cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    make(out, "test/llama-tiny-gqa", llama_dir)
    make(out, "test/llama-tiny-sharded", llama_sharded)
    make(out, "test/bad-truncated", bad_truncated)
    make(out, "test/bad-shapes", bad_shapes)
    make(out, "test/bad-arch", bad_arch)
    if not small:
        make(out, "test/gpt2-small-random", gpt2_small)
    gguf = out.parent / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    link = out / "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF" / gguf.name
    if gguf.exists() and not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(gguf)
    print(out)


if __name__ == "__main__":
    main()
