#!/usr/bin/env python3
"""The native CPU engine next to PyTorch eager, same shapes, same machine, one
run: `attnscope bench --gpt2-small` (release build) then tools/bench_torch.py,
and the ratios (ours ÷ PyTorch's; below 1 is faster) at one and two threads.

    cargo build --release
    ~/.venvs/attnscope-torch/bin/python tools/bench_cpu.py [--t 16,128] [--repeat 5]

Needs torch in the running Python (see tools/bench_torch.py).
"""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rust_rows(out: str, section: str) -> dict:
    """{T: (ms on 1 thread, ms on 2 threads)} from one `attnscope bench` CPU section."""
    rows, inside = {}, False
    for line in out.splitlines():
        if line.startswith("CPU backend"):
            inside = section in line
        elif inside and (m := re.match(r"\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s", line)):
            rows[int(m[1])] = (float(m[2]), float(m[3]))
    return rows


def torch_rows(out: str) -> dict:
    rows = {}
    for line in out.splitlines():
        if m := re.match(r"\s+(\d+)\s+(\d+)\s+([\d.]+)$", line):
            rows[(int(m[1]), int(m[2]))] = float(m[3])
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--t", default="16,128")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    exe = os.environ.get("ATTNSCOPE_EXE") or os.path.join(ROOT, "target", "release", "attnscope")
    ours = subprocess.run([exe, "bench", "--gpt2-small", "--t", args.t, "--repeat", str(args.repeat)],
                          cwd=ROOT, check=True, capture_output=True, text=True).stdout
    print(ours)
    theirs = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_torch.py"), "--t", args.t,
                             "--threads", "1,2", "--repeat", str(args.repeat)],
                            cwd=ROOT, check=True, capture_output=True, text=True).stdout
    print(theirs)
    r, p = rust_rows(ours, "GPT-2 small"), torch_rows(theirs)
    print("GPT-2 small shape, forward ms: attnscope CPU vs PyTorch eager (ratio = ours / PyTorch)")
    print(f"  {'T':>5}  {'threads':>7}  {'attnscope':>10}  {'PyTorch':>10}  {'ratio':>6}")
    for t in map(int, args.t.split(",")):
        for threads in (1, 2):
            if t in r and (t, threads) in p:
                ms = r[t][threads - 1]
                print(f"  {t:>5}  {threads:>7}  {ms:>10.1f}  {p[(t, threads)]:>10.1f}  {ms / p[(t, threads)]:>5.2f}×")


if __name__ == "__main__":
    main()
