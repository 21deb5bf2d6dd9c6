#!/usr/bin/env node
// Benchmark onnxruntime-web (wasm + webgpu EPs) on random-weight GPT-2 ONNX models
// in headless Chromium (/usr/bin/chromium, WebGPU via SwiftShader).
//
// Usage: node bench.mjs [tiny|gpt2-small|smollm2|all] [--ep wasm,webgpu] [--threads 1]
//                       [--runs 5] [--t 16,64,128] [--json out.json]
// Models come from make_models.py (default dir /tmp/attnscope-peer, env ATTNSCOPE_PEER_DIR).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MODEL_DIR = process.env.ATTNSCOPE_PEER_DIR || '/tmp/attnscope-peer';
const ORT_DIST = path.join(HERE, 'node_modules', 'onnxruntime-web', 'dist');

const MODELS = {
  tiny: { vocab: 4096, Ts: [16, 64, 128] },
  'gpt2-small': { vocab: 50257, Ts: [16, 64, 128] },
  smollm2: { vocab: 49152, Ts: [16, 64, 128] },
};
// Time caps (ms). SwiftShader WebGPU on gpt2-small can be extremely slow: never hang.
const CAPS = {
  create: 150_000,          // fetch + InferenceSession.create
  run: 60_000,              // any single session.run (warm-up included)
  config: { wasm: 150_000, webgpu: 240_000 },   // whole (model, EP) combination
};

// ---------- args
const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : def; };
const positional = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1].startsWith('--')));
const which = positional[0] || 'all';
if (which !== 'all' && !MODELS[which]) { console.error(`unknown model ${which}`); process.exit(2); }
const modelNames = which === 'all' ? Object.keys(MODELS) : [which];
const eps = opt('--ep', 'wasm,webgpu').split(',');
const threads = Number(opt('--threads', '1'));
const RUNS = Number(opt('--runs', '5'));
const jsonOut = opt('--json', null);
const onlyTs = opt('--t', null);
if (onlyTs) for (const spec of Object.values(MODELS)) spec.Ts = onlyTs.split(',').map(Number);

const CHROME_ARGS = ['--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-quic', '--enable-unsafe-webgpu', '--enable-features=Vulkan',
  '--use-vulkan=swiftshader', '--use-angle=swiftshader', '--ignore-gpu-blocklist'];

// ---------- static server (COOP/COEP set so crossOriginIsolated is true; threads>1 possible)
const TYPES = { '.html': 'text/html', '.mjs': 'text/javascript', '.js': 'text/javascript',
  '.wasm': 'application/wasm', '.onnx': 'application/octet-stream', '.json': 'application/json' };
function resolveUrl(u) {
  const p = decodeURIComponent(new URL(u, 'http://x').pathname);
  if (p === '/' || p === '/bench.html') return path.join(HERE, 'bench.html');
  const safe = (root, rel) => { const f = path.resolve(root, '.' + rel); return f.startsWith(root + path.sep) ? f : null; };
  if (p.startsWith('/ort/')) return safe(ORT_DIST, p.slice(4));
  if (p.startsWith('/models/')) return safe(MODEL_DIR, p.slice(7));
  return null;
}
const server = http.createServer((req, res) => {
  const f = resolveUrl(req.url);
  if (!f || !fs.existsSync(f) || !fs.statSync(f).isFile()) { process.stderr.write(`[server] 404 ${req.url}\n`); res.writeHead(404); res.end('not found'); return; }
  res.writeHead(200, {
    'Content-Type': TYPES[path.extname(f)] || 'application/octet-stream',
    'Content-Length': fs.statSync(f).size,
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Embedder-Policy': 'require-corp',
    'Cache-Control': 'no-store',
  });
  fs.createReadStream(f).pipe(res);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const ORIGIN = `http://127.0.0.1:${server.address().port}`;

// ---------- helpers
const TIMEOUT = Symbol('timeout');
const withTimeout = (p, ms) => {
  let t; const timer = new Promise((r) => { t = setTimeout(() => r(TIMEOUT), ms); });
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
};
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const r1 = (x) => (typeof x === 'number' ? Math.round(x * 10) / 10 : x);

const liveServers = new Set();
async function cleanup() {
  for (const s of liveServers) { try { await s.kill(); } catch {} }
  liveServers.clear();
  server.close();
}
process.on('SIGINT', async () => { await cleanup(); process.exit(130); });

async function benchOne(model, ep) {
  const spec = MODELS[model];
  const file = path.join(MODEL_DIR, model, 'model.onnx');
  const res = { model, ep, threads, status: 'ok', create_ms: null, create2_ms: null, fetch_ms: null, runs: {} };
  if (!fs.existsSync(file)) { res.status = `missing ${file} (run make_models.py)`; return res; }
  const t0 = Date.now();
  const budget = () => CAPS.config[ep] - (Date.now() - t0);
  // A fresh browser per (model, EP) so a stuck run can be killed without poisoning the rest.
  const bserver = await chromium.launchServer({ executablePath: '/usr/bin/chromium', headless: true, args: CHROME_ARGS });
  liveServers.add(bserver);
  res.browser_pid = bserver.process().pid;
  try {
    const browser = await chromium.connect(bserver.wsEndpoint());
    const page = await browser.newPage();
    const consoleErrs = [];
    page.on('console', (m) => { const t = m.text(); if (m.type() === 'error' && !/\[W:onnxruntime/.test(t)) consoleErrs.push(t.slice(0, 300)); });
    page.on('pageerror', (e) => consoleErrs.push(String(e).slice(0, 300)));
    await page.goto(`${ORIGIN}/bench.html?ep=${ep}&threads=${threads}`);
    await page.waitForFunction(() => window.benchReady === true, null, { timeout: 30_000 });
    res.env = await page.evaluate(() => window.benchInfo());

    const c = await withTimeout(page.evaluate((u) => window.benchCreate(u), `/models/${model}/model.onnx`), Math.min(CAPS.create, budget()))
      .catch((e) => ({ error: String(e.message || e).split('\n')[0].slice(0, 300) }));
    if (c === TIMEOUT) { res.status = 'timeout (session create)'; return res; }
    if (c.error) { res.status = 'error: ' + c.error; res.console = consoleErrs; return res; }
    Object.assign(res, { fetch_ms: r1(c.fetch_ms), create_ms: r1(c.create_ms), create2_ms: r1(c.create2_ms), model_mb: r1(c.model_bytes / 2 ** 20), n_outputs: c.outputNames.length });

    let aborted = false;
    for (const T of spec.Ts) {
      if (aborted) { res.runs[T] = { status: 'skipped (earlier timeout)' }; continue; }
      const row = { status: 'ok', warmup_ms: null, times_ms: [] };
      res.runs[T] = row;
      for (let i = 0; i <= RUNS; i++) {           // i = 0 is the warm-up
        const left = budget();
        if (left <= 1000) { row.status = `timeout (config budget; ${row.times_ms.length}/${RUNS} runs done)`; aborted = true; break; }
        const r = await withTimeout(page.evaluate(([T, v, s]) => window.benchRun(T, v, s), [T, spec.vocab, i === 0]),
          Math.min(CAPS.run, left)).catch((e) => ({ error: String(e.message || e).split('\n')[0].slice(0, 300) }));
        if (r === TIMEOUT) { row.status = `timeout (${i === 0 ? 'warm-up' : `run ${i}`} > ${Math.round(Math.min(CAPS.run, left) / 1000)} s)`; aborted = true; break; }
        if (r.error) { row.status = 'error: ' + r.error; aborted = true; break; }
        if (i === 0) {
          row.warmup_ms = r1(r.ms); row.out_shapes = r.shapes; row.finite = r.finite;
        } else row.times_ms.push(r1(r.ms));
      }
      if (row.times_ms.length) {
        row.median_ms = r1(median(row.times_ms));
        row.min_ms = Math.min(...row.times_ms); row.max_ms = Math.max(...row.times_ms);
      }
      if (row.status !== 'ok' && consoleErrs.length) row.console = consoleErrs.slice(-3);
    }
    if (!aborted) await withTimeout(page.evaluate(() => window.benchRelease()), 10_000).catch(() => {});
    if (consoleErrs.length) res.console_errors = consoleErrs.slice(-5);
    return res;
  } catch (e) {
    res.status = 'error: ' + String(e.message || e).split('\n')[0].slice(0, 300);
    return res;
  } finally {
    res.wall_s = r1((Date.now() - t0) / 1000);
    // Graceful close, then hard kill (by the launched PID) if the GPU process is wedged.
    const closed = await withTimeout(bserver.close().then(() => true), 10_000).catch(() => false);
    if (closed !== true) await bserver.kill().catch(() => {});
    liveServers.delete(bserver);
  }
}

// ---------- main
const t00 = Date.now();
const results = [];
try {
  for (const model of modelNames) for (const ep of eps) {
    process.stderr.write(`[bench] ${model} / ${ep} ...\n`);
    const r = await benchOne(model, ep);
    process.stderr.write(`[bench]   ${r.status} (${r.wall_s}s)\n`);
    results.push(r);
  }
} finally { await cleanup(); }

const env = results.find((r) => r.env)?.env || {};
const out = {
  tool: 'onnxruntime-web', ort_version: env.ort_version, chromium: env.userAgent?.match(/Chrome\/[\d.]+/)?.[0],
  webgpu_adapter: env.webgpu, crossOriginIsolated: env.crossOriginIsolated, numThreads: threads,
  hardwareConcurrency: env.hardwareConcurrency, runs_per_T: RUNS, total_s: r1((Date.now() - t00) / 1000),
  results: results.map(({ env, ...r }) => r),
};
console.log(JSON.stringify(out));
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(out, null, 1));

// readable table
const rows = [['model', 'EP', 'create ms (cold/warm)', 'T', 'median ms', 'min', 'max', 'warm-up', 'status']];
for (const r of results) {
  const Ts = Object.keys(r.runs);
  if (!Ts.length) rows.push([r.model, r.ep, r.create_ms == null ? '-' : `${r.create_ms} / ${r.create2_ms}`, '-', '-', '-', '-', '-', r.status]);
  for (const T of Ts) {
    const x = r.runs[T];
    rows.push([r.model, r.ep, r.create_ms == null ? '-' : `${r.create_ms} / ${r.create2_ms}`, T, x.median_ms ?? '-', x.min_ms ?? '-', x.max_ms ?? '-', x.warmup_ms ?? '-', x.status]);
  }
}
const w = rows[0].map((_, j) => Math.max(...rows.map((r) => String(r[j]).length)));
for (const [i, r] of rows.entries()) {
  console.log(r.map((c, j) => String(c).padEnd(w[j])).join('  '));
  if (i === 0) console.log(w.map((n) => '-'.repeat(n)).join('  '));
}
console.log(`ort-web ${out.ort_version}, ${out.chromium}, numThreads=${threads}, crossOriginIsolated=${out.crossOriginIsolated}, webgpu=${JSON.stringify(out.webgpu_adapter)}, total ${out.total_s}s`);
