#!/usr/bin/env python3
"""The page's CPU engine next to ONNX Runtime Web's wasm (one thread), in the
same headless Chromium on the same machine, one command: first our traced
forward compiled to wasm (the app's wasm-release profile;
tests/wasm_cpu_bench.rs through wasm-bindgen-test-runner), in both builds
the app ships: plain simd128, and relaxed SIMD (fused multiply-adds, rows
` +fma`; tools/build_relaxed_simd.sh; the page loads it in this Chromium),
then tools/peer's
ORT benchmark on the same shapes (our default model's and GPT-2 small's,
random weights; ours also with them rounded to f16 and kept 16-bit, as the
shipped default model and f16 checkpoints load, rows `-f16`, against ORT's
f32 on the same shape), then the ratios (ours ÷ ORT's; below 1 is faster).

Setup, once (see tools/peer/README.md; models are never committed):
    ~/.venvs/attnscope-torch/bin/pip install onnx onnxscript transformers
    (cd tools/peer && ~/.venvs/attnscope-torch/bin/python make_models.py all && npm ci)
Run:
    python3 tools/bench_browser.py [--rounds N] [--breakdown]
--rounds N (default 3) alternates them N times (ours, ours +fma, ORT, ...)
and prints each one's median over the rounds and the median of the rounds'
own ratios with their range: this shared machine's load drifts by ~10 %
between minutes, and a ratio taken within one round is what it affects least.
--breakdown also prints where GPT-2 small's forward spends its time in wasm
(each kernel of a layer timed alone × the layer count, the LM head, the rest).
"""
import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


BENCH_DIR = tempfile.mkdtemp(prefix="attnscope-bench-")
atexit.register(shutil.rmtree, BENCH_DIR, ignore_errors=True)
_built = {}


def bench_wasm(relaxed):
    """tests/wasm_cpu_bench.rs compiled once per build and copied aside: the two
    builds share a target directory (tools/build_relaxed_simd.sh), so the
    rounds run the copies rather than switching the crates back and forth."""
    if relaxed not in _built:
        env = dict(os.environ)
        # Unset for the plain build, as Trunk builds it (a value, even "0",
        # differs from unset to Cargo and would recompile both crates).
        env.pop("ATTNSCOPE_RELAXED_SIMD", None)
        if relaxed:
            env["ATTNSCOPE_RELAXED_SIMD"] = "1"
        out = subprocess.run(["cargo", "test", "--profile", "wasm-release", "--target", "wasm32-unknown-unknown",
                              "--test", "wasm_cpu_bench", "--no-run", "--message-format=json"],
                             cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
        exes = [m["executable"] for m in map(json.loads, out.splitlines())
                if m.get("reason") == "compiler-artifact" and m.get("executable")
                and m["target"]["name"] == "wasm_cpu_bench"]
        if len(exes) != 1:
            sys.exit(f"bench_browser: expected one wasm_cpu_bench test binary, cargo reported {exes}")
        _built[relaxed] = os.path.join(BENCH_DIR, "relaxed.wasm" if relaxed else "plain.wasm")
        shutil.copyfile(exes[0], _built[relaxed])
    return _built[relaxed]


def wasm_bench(test, relaxed=False):
    env = dict(os.environ, CHROMEDRIVER="/usr/bin/chromedriver", WASM_BINDGEN_TEST_TIMEOUT="900")
    return subprocess.run(["wasm-bindgen-test-runner", bench_wasm(relaxed), "--nocapture", test],
                          cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout


def ours(relaxed=False):
    out = wasm_bench("page_cpu_engine_forward_times", relaxed)  # a name filter: that test alone
    suffix = " +fma" if relaxed else ""
    return {(m[1] + suffix, int(m[2])): float(m[3])
            for m in re.finditer(r"attnscope-cpu-wasm (\S+) T=(\d+) median_ms=([\d.]+)", out)}


def ort():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ort.json")
        subprocess.run(["node", "bench.mjs", "all", "--ep", "wasm", "--threads", "1", "--json", path],
                       cwd=os.path.join(ROOT, "tools", "peer"), check=True, capture_output=True, text=True)
        with open(path) as f:
            data = json.load(f)
    return {(r["model"], int(t)): x["median_ms"] for r in data["results"]
            for t, x in r.get("runs", {}).items() if x.get("median_ms") is not None}


def main():
    if "--breakdown" in sys.argv[1:]:
        for relaxed in (False, True):
            out = wasm_bench("page_cpu_engine_forward_breakdown", relaxed)
            build = "relaxed-SIMD build" if relaxed else "plain simd128 build"
            print(f"where GPT-2 small's forward spends its time in wasm, {build} (ms, share of the forward):")
            for line in re.findall(r"attnscope-cpu-wasm-part (.*)", out):
                print("  " + line)
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
    runs = []
    for r in range(rounds):
        mine = ours()
        mine.update(ours(relaxed=True))
        runs.append((mine, ort()))
        print(f"round {r + 1} of {rounds} done", file=sys.stderr)
    median = lambda xs: sorted(xs)[len(xs) // 2] if xs else None
    peer = lambda key: (key[0].removesuffix(" +fma").removesuffix("-f16"), key[1])
    print(f"forward ms in headless Chromium, one thread, {rounds} alternating rounds: attnscope page CPU engine "
          "(wasm, full trace) vs ONNX Runtime Web 1.30 wasm (logits + every attention); medians over the rounds, "
          "and the median (range) of each round's own ratio")
    print(f"  {'model':>16}  {'T':>4}  {'attnscope':>10}  {'ORT wasm':>10}  {'ratio':>6}  range")
    keys = sorted({k for a, _ in runs for k in a} | {k for _, b in runs for k in b}, key=lambda k: (peer(k), k))
    for key in keys:
        x = median([a[key] for a, _ in runs if key in a])
        y = median([b[peer(key)] for _, b in runs if peer(key) in b])
        ratios = sorted(a[key] / b[peer(key)] for a, b in runs if key in a and peer(key) in b)
        ratio = f"{median(ratios):5.2f}×  {ratios[0]:.2f}–{ratios[-1]:.2f}" if ratios else "   -"
        fmt = lambda v: f"{v:10.1f}" if v is not None else f"{'-':>10}"
        print(f"  {key[0]:>16}  {key[1]:>4}  {fmt(x)}  {fmt(y)}  {ratio}")


if __name__ == "__main__":
    main()
