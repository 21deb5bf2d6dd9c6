// Times the wasm build's candidates in node (V8, the engine of Chromium):
// median ms of 9 runs per shape. Usage: node run.mjs path/to/gemm_bench.wasm
import { readFileSync } from 'node:fs';
const bytes = readFileSync(process.argv[2]);
const { instance } = await WebAssembly.instantiate(bytes, {});
const { setup, run_once } = instance.exports;
const names = ['naive', 'matrixmultiply', 'gemm', 'ours (simd128)'];
const shapes = [];
for (const t of [16, 128]) shapes.push([t, 768, 2304, 0], [t, 768, 768, 0], [t, 768, 3072, 0], [t, 3072, 768, 0], [t, 768, 50257, 1]);
console.log(['m×k×n'.padStart(22), ...names.map((n) => n.padStart(16))].join(' '));
for (const [m, k, n, tr] of shapes) {
  setup(m, k, n, tr);
  const cols = [];
  const sums = [];
  for (let w = 0; w < names.length; w++) {
    const reps = w === 0 ? 3 : 9;
    // Warm-ups: V8 starts wasm in its baseline compiler and tiers hot code up.
    for (let i = 0; i < (w === 0 ? 1 : 3); i++) run_once(w);
    const times = [];
    for (let r = 0; r < reps; r++) {
      const s = performance.now();
      sums[w] = run_once(w);
      times.push(performance.now() - s);
    }
    times.sort((a, b) => a - b);
    const ms = times[reps >> 1];
    cols.push(`${ms.toFixed(2)} ms ${((2 * m * k * n) / 1e6 / ms).toFixed(1)}GF`.padStart(16));
  }
  console.log([`${m}×${k}×${n}${tr ? 'ᵀ' : ''}`.padStart(22), ...cols].join(' '), ' sums', sums.map((s) => s.toFixed(1)).join(' '));
}
