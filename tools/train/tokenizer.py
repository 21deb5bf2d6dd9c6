#!/usr/bin/env python3
"""Trains the default model's byte-level BPE (4096 tokens) on data/train.txt
with Hugging Face `tokenizers`; writes data/tokenizer.json, which the Rust
`tokenizers` crate loads unchanged. Byte-level: any Unicode text tokenizes.

    python3 tools/train/tokenizer.py
"""
import pathlib

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

DATA = pathlib.Path(__file__).resolve().parent / "data"
VOCAB = 4096


def main():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([str(DATA / "train.txt")], trainer=trainer)
    assert tok.get_vocab_size() == VOCAB
    # Minified: the page fetches it on every first visit (issue 19).
    tok.save(str(DATA / "tokenizer.json"), pretty=False)
    sample = "The cat sat on the mat. 猫が座った 🐈"
    print(tok.encode(sample).tokens)


if __name__ == "__main__":
    main()
