// Real models in the page, per backend (issue 15's performance figures):
// the time from a cached open to the first heatmap, a full forward at
// T = 128 (a text whose first word changed, so nothing is reused), and a
// keystroke that appends one character at the end of a text of about T
// tokens (T = 128 and 512), on GPT-2 small's shape (random F16 weights) and
// SmolLM2-135M (its GGUF), served by the stand-in hub of the e2e tests.
//
//   node tools/bench_models.mjs [--models gpt2-small,smollm2] [--backends cpu,cpu-plain,gpu]
//                               [--t 128,512] [--keys 5] [--json out.json]
//
// Needs `trunk build --release` in dist/, the e2e node modules, the page
// models (python3 tools/make_page_models.py, run by test.sh) and SmolLM2 in
// the cache (python3 tools/get_smollm2.py). Without --backends gpu the page
// runs its CPU engine in wasm (the relaxed-SIMD build where Chromium has relaxed
// SIMD; "cpu-plain" asks for the plain simd128 build, which browsers without
// relaxed SIMD get; each row says which ran); "gpu" is WebGPU through SwiftShader here, a
// CPU emulation: its times say nothing about GPUs. Run
// `node tools/peer/bench.mjs gpt2-small|smollm2 --ep wasm --threads 1 --t 128,512`
// in the same session for ONNX Runtime Web on the same shapes (full runs: it
// has no KV cache, so a keystroke there is a full run).
//
// What each figure includes:
// - open: navigation start → the page shows the model's first heatmap
//   (app start, the built-in model, the model read from Cache Storage and
//   built, uploaded to the GPU, one run and its draws); polled every 50 ms.
// - full T=128: the page's own keystroke breakdown for replacing the text
//   (input event → heatmap on screen, the frame wait taken out), and of it
//   the engine's forward (on the GPU: the submission, its end is in total).
// - keystroke T: the same for one appended or deleted character, median.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { serveDist, launch, ROOT, median } from '../tests/e2e/harness.mjs';
import { startHub } from '../tests/e2e/hub_server.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const wanted = arg('--models', 'gpt2-small,smollm2').split(',');
const backends = arg('--backends', 'cpu,gpu').split(',');
const sizes = arg('--t', '128,512').split(',').map(Number);
const keys = Number(arg('--keys', '5'));
const jsonOut = arg('--json', null);

const models = execFileSync('python3', [path.join(ROOT, 'tools/make_page_models.py')]).toString().trim();
const server = await serveDist();
const hub = await startHub(models);
const NAMES = {
  'gpt2-small': `${hub.url}/files/test/gpt2-small-random`,
  smollm2: 'HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf',
};
const WORDS = 'the cat sat on a mat and then it ran off to see a dog by the door '.split(' ').filter(Boolean);
const textOf = (n, first = 'the') => [first, ...Array.from({ length: n - 1 }, (_, i) => WORDS[(i + 1) % WORDS.length])].join(' ');
const state = (page) => page.evaluate(() => window.attnscope.state());

/** Sets the text and resolves with the page's breakdown of the run it caused. */
async function timed(page, act) {
  await page.evaluate(() => { window.keystrokeDone = new Promise((resolve) => { window.attnscope.onKeystroke = resolve; }); });
  await act();
  return page.evaluate(() => Promise.race([window.keystrokeDone,
    new Promise((_, fail) => setTimeout(() => fail(new Error('no keystroke breakdown in 10 min')), 600_000))]));
}

/** Fills a text of at most t − 1 tokens (the page's count), close to it. */
async function fillTokens(page, t) {
  const box = page.locator('#text-input');
  let n = t;
  let best = null;
  for (let round = 0; round < 6; round++) {
    const text = textOf(n);
    await timed(page, () => box.fill(text));
    const got = (await state(page)).tokens.length;
    if (got <= t - 1 && (!best || got > best.got)) best = { n, got };
    if (got <= t - 1 && got >= t - 4) break;
    n = Math.max(1, Math.floor(n * (t - 1) / got) - (got > t - 1 ? 1 : 0));
  }
  if (!best) throw new Error(`no text under ${t} tokens`);
  if ((await state(page)).tokens.length !== best.got) await timed(page, () => box.fill(textOf(best.n)));
  return best.got;
}

const results = [];
for (const model of wanted) {
  const name = NAMES[model];
  for (const backend of backends) {
    const browser = await launch({ webgpu: backend === 'gpu' });
    const row = { model, backend };
    try {
      const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      if (backend === 'cpu-plain') await context.addInitScript(() => { window.attnscopePlainSimd = true; });
      const page = await context.newPage();
      const base = `${server.url}?hub=${encodeURIComponent(hub.url)}`;
      // Download once into this context's Cache Storage (by a link: a click on the plan's button).
      await page.goto(`${base}#text=Hi&model=${encodeURIComponent(name)}`);
      await page.waitForFunction(() => window.attnscope && window.attnscope.state().phase !== 'loading', null, { timeout: 120_000 });
      const download = page.locator('[data-testid=model-download]');
      await download.waitFor({ timeout: 120_000 });
      await download.click();
      const ready = (key) => page.waitForFunction((k) => {
        const s = window.attnscope?.state();
        return !!s && s.modelKey === k && s.runs > 0 && s.phase === 'ready' && !document.querySelector('[data-testid=model-progress]');
      }, key, { timeout: 900_000, polling: 50 });
      await ready(name);
      row.gpu = (await state(page)).gpu;
      row.simd = (await state(page)).cpuSimd;
      // The cached open: a fresh navigation to the link, nothing to download or ask.
      await page.goto('about:blank');
      await page.goto(`${base}#text=Hi&model=${encodeURIComponent(name)}`);
      await ready(name);
      row.open_ms = Math.round(await page.evaluate(() => performance.now()));
      // A full run at T = 128: the same length with another first word, so no row is reused.
      await fillTokens(page, 128);
      const words = (await state(page)).text.split(' ');
      const replaced = ['a', ...words.slice(1)].join(' ');
      const f = await timed(page, () => page.locator('#text-input').fill(replaced));
      row.full = { t: (await state(page)).tokens.length, total_ms: +(f.total - f.frameWait).toFixed(1), forward_ms: +f.forward.toFixed(1) };
      row.keystroke = {};
      for (const t of sizes) {
        const got = await fillTokens(page, t);
        const box = page.locator('#text-input');
        await box.focus();
        await box.press('End');
        const rows = [];
        for (let k = 0; k < keys; k++) rows.push(await timed(page, () => box.press(k % 2 ? 'Backspace' : 'x')));
        row.keystroke[t] = {
          t: got,
          total_ms: +median(rows.map((r) => r.total - r.frameWait)).toFixed(1),
          forward_ms: +median(rows.map((r) => r.forward)).toFixed(1),
          draws_ms: +median(rows.map((r) => r.draws)).toFixed(1),
          reads_ms: +median(rows.map((r) => r.reads)).toFixed(1),
        };
      }
    } catch (e) {
      row.error = String(e.message || e).split('\n')[0];
    } finally {
      await browser.close();
    }
    console.log(JSON.stringify(row));
    results.push(row);
  }
}
await server.close();
await hub.close();
if (jsonOut) writeFileSync(jsonOut, JSON.stringify(results, null, 1));
console.log('\nmodel       backend  open ms  full T=128 (forward)  ' + sizes.map((t) => `keystroke T=${t} (forward)`).join('  '));
for (const r of results) {
  if (r.error) { console.log(`${r.model.padEnd(11)} ${r.backend.padEnd(8)} error: ${r.error}`); continue; }
  const k = sizes.map((t) => r.keystroke[t] ? `${r.keystroke[t].total_ms} (${r.keystroke[t].forward_ms}) @${r.keystroke[t].t}`.padEnd(26) : '-'.padEnd(26)).join('  ');
  console.log(`${r.model.padEnd(11)} ${(r.backend + (r.backend === 'gpu' && !r.gpu ? '(!)' : '')).padEnd(8)} ${String(r.open_ms).padStart(7)}  ${`${r.full.total_ms} (${r.full.forward_ms}) @${r.full.t}`.padEnd(20)}  ${k}`);
}
