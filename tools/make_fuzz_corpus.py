#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (fuzz/corpus/<target>/): a few valid
inputs per target and the hostile ones of issue 18, so mutation starts near
both. Deterministic; run from the repository root: python3 tools/make_fuzz_corpus.py"""
import json
import math
import os
import struct

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))


def safetensors(tensors, prefix=""):
    """tensors: {name: (dtype, shape, values)} -> bytes."""
    header, data = {}, b""
    for name, (dtype, shape, values) in tensors.items():
        if dtype == "F32":
            raw = b"".join(struct.pack("<f", v) for v in values)
        else:  # F16
            raw = b"".join(struct.pack("<e", v) for v in values)
        header[prefix + name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + data


def tiny_model(d=4, vocab=8, positions=4, layers=1, dtype="F32"):
    vals = lambda n, k=1: [math.sin(0.37 * (i + 1) * k) * 0.5 for i in range(n)]
    t = {"wte.weight": (dtype, [vocab, d], vals(vocab * d)), "wpe.weight": (dtype, [positions, d], vals(positions * d, 2)),
         "ln_f.weight": (dtype, [d], [1.0] * d), "ln_f.bias": (dtype, [d], [0.0] * d)}
    for l in range(layers):
        h = f"h.{l}."
        t.update({h + "ln_1.weight": (dtype, [d], [1.0] * d), h + "ln_1.bias": (dtype, [d], [0.0] * d),
                  h + "attn.c_attn.weight": (dtype, [d, 3 * d], vals(3 * d * d, 3)), h + "attn.c_attn.bias": (dtype, [3 * d], [0.0] * 3 * d),
                  h + "attn.c_proj.weight": (dtype, [d, d], vals(d * d, 4)), h + "attn.c_proj.bias": (dtype, [d], [0.0] * d),
                  h + "ln_2.weight": (dtype, [d], [1.0] * d), h + "ln_2.bias": (dtype, [d], [0.0] * d),
                  h + "mlp.c_fc.weight": (dtype, [d, 4 * d], vals(4 * d * d, 5)), h + "mlp.c_fc.bias": (dtype, [4 * d], [0.0] * 4 * d),
                  h + "mlp.c_proj.weight": (dtype, [4 * d, d], vals(4 * d * d, 6)), h + "mlp.c_proj.bias": (dtype, [d], [0.0] * d)})
    return t


def loader_input(config, weights):
    config = config if isinstance(config, bytes) else json.dumps(config).encode()
    return struct.pack("<H", len(config)) + config + weights


TINY = {"n_layer": 1, "n_head": 1, "n_embd": 4, "n_positions": 4, "vocab_size": 8, "model_type": "gpt2"}

write("loader", "tiny-f32", loader_input(TINY, safetensors(tiny_model())))
write("loader", "tiny-f16-prefixed", loader_input(TINY, safetensors(tiny_model(dtype="F16"), "transformer.")))
write("loader", "two-layers-two-heads",
      loader_input(dict(TINY, n_layer=2, n_head=2, n_embd=4, n_inner=16, activation_function="relu"),
                   safetensors({**tiny_model(layers=2)})))
nan = tiny_model()
nan["ln_f.bias"] = ("F32", [4], [0.0, float("nan"), 0.0, 0.0])
write("loader", "nan-weight", loader_input(TINY, safetensors(nan)))
write("loader", "huge-n-embd", loader_input(dict(TINY, n_embd=4611686018427387904), safetensors(tiny_model())))
write("loader", "tiny-epsilon", loader_input(dict(TINY, layer_norm_epsilon=1e-300), safetensors(tiny_model())))
write("loader", "header-length-lies", loader_input(TINY, struct.pack("<Q", 2**63) + b"{}"))
write("loader", "empty-tensors", loader_input(TINY, safetensors({f"t{i}": ("F32", [0], []) for i in range(50)})))
write("loader", "empty", b"")

def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_file(kv, tensors):
    """A GGUF v3 file: kv is [(key, type, value bytes)], tensors [(name, dims, ggml type, bytes)]."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for key, kind, value in kv:
        head += gguf_string(key) + struct.pack("<I", kind) + value
    data, infos = b"", b""
    for name, dims, kind, raw in tensors:
        infos += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", kind, len(data))
        data += raw + b"\0" * (-len(raw) % 32)
    body = head + infos
    return body + b"\0" * (-len(body) % 32) + data


def u32(key, v):
    return (key, 4, struct.pack("<I", v))


def strings(key, items):
    return (key, 9, struct.pack("<IQ", 8, len(items)) + b"".join(gguf_string(s) for s in items))


def blocks(n, size, scales):
    """n quantized blocks of `size` bytes, f16 scale 1/16 (and minimum) first."""
    return bytes((0x00, 0x2c)[i % 2] if i % size < 2 * scales else (i * 37) % 251 for i in range(n * size))


# A whole tiny Llama: F32 norms, a Q8_0 token table, Q4_0/Q4_1/Q8_0 projections, one head of 32.
LLAMA_KV = [("general.architecture", 8, gguf_string("llama")), u32("llama.embedding_length", 32),
            u32("llama.block_count", 1), u32("llama.attention.head_count", 1), u32("llama.feed_forward_length", 32),
            u32("llama.context_length", 16), ("tokenizer.ggml.model", 8, gguf_string("gpt2")),
            strings("tokenizer.ggml.tokens", ["a", "b", "ab", "<|end|>"]),
            ("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, 4) + struct.pack("<4i", 1, 1, 1, 3)),
            strings("tokenizer.ggml.merges", ["a b"])]
ones = struct.pack("<32f", *[1.0] * 32)
LLAMA_TENSORS = [("token_embd.weight", [32, 4], 8, blocks(4, 34, 1))]
LLAMA_TENSORS += [(f"{n}.weight", [32], 0, ones) for n in ("output_norm", "blk.0.attn_norm", "blk.0.ffn_norm")]
LLAMA_TENSORS += [(f"blk.0.{n}.weight", [32, 32], kind, blocks(32, size, 2 if size == 20 else 1))
                  for n, kind, size in [("attn_q", 2, 18), ("attn_k", 3, 20), ("attn_v", 2, 18), ("attn_output", 3, 20),
                                        ("ffn_gate", 8, 34), ("ffn_up", 2, 18), ("ffn_down", 3, 20)]]
write("gguf", "tiny-llama-quantized", gguf_file(LLAMA_KV, LLAMA_TENSORS))
write("gguf", "qwen2-metadata-only", gguf_file([("general.architecture", 8, gguf_string("qwen2"))] + LLAMA_KV[1:], []))
write("gguf", "counts-lie", b"GGUF" + struct.pack("<IQQ", 3, 2**63, 2**40))
write("gguf", "q4k-tensor", gguf_file(LLAMA_KV, [("token_embd.weight", [256, 4], 12, b"\0" * 576)]))
write("gguf", "empty", b"")

texts = ["The cat sat on the mat because it was tired.", "今日は天気がいい、GPT-2です。", "오늘은 날씨가 좋아서",
         "The ☀️ is 😊 today", "e\u0301\u0301\u0301 combining", "שלום עולם \u202eRTL", "  spaces   and\ttabs\r\n",
         "<|endoftext|>Hello", "\uffff\ufffe\u0000"]
for i, text in enumerate(texts):
    write("tokenizer", f"text-{i}", bytes([i % 3]) + text.encode())
write("tokenizer", "invalid-utf8", b"\x00\xed\xa0\x80 lone surrogate bytes \xff\xfe")
write("tokenizer", "repeated-past-the-bound", b"\xff" + "long text 日本 ".encode())

links = ["text=The%20cat%20sat&layer=1&head=2&stage=weights&mask=window%3A3&focus=2%2C1&t=0.75&theme=dark&view=heads"
         "&present=3&seed=42&topk=40&topp=0.9&model=default",
         "#layer=-1&head=999999&stage=softmax&mask=window:0&t=nan&theme=<x>&model=../x&zoom=2&text=ok&seed=-1&topk=0",
         "text=%E2%9C%93%FF%2&lock=4095%2C0&seed=18446744073709551615&view=softmax",
         "text=" + "a" * 200 + "&&&=&x", "view=%3Cscript%3E&text=+plus+"]
for i, link in enumerate(links):
    write("share_parse", f"link-{i}", link)

escapes = ["plain", "Tom & Jerry <b>\"q\"</b> 'a'", "=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx",
           "\uffff\ufffe\u0001\u001f", "line\r\nend\rcr", "naïve 日本 😊", "%41+b#c"]
for i, text in enumerate(escapes):
    write("escape", f"text-{i}", text)
print("wrote", OUT)
