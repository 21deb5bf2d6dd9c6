// Any model in the page (issue 15, items 1–3): models from a stand-in hub on a
// second origin (hub_server.mjs, files written by tools/make_page_models.py),
// by hub name, by URL, from a link's model= and from the user's files; the
// plan before downloading and its refusals; progress, cancel, the cache and
// a reload with the hub offline; bad files that leave the current model.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { serveDist, launch, openApp, typeText, ROOT } from './harness.mjs';
import { startHub } from './hub_server.mjs';

let server;
let hub;
let models;
before(async () => {
  models = execFileSync('python3', [path.join(ROOT, 'tools/make_page_models.py')]).toString().trim();
  server = await serveDist();
  hub = await startHub(models);
});
after(async () => {
  await server.close();
  await hub.close();
});

const appUrl = (fragment = '') => `${server.url}?hub=${encodeURIComponent(hub.url)}${fragment}`;
const state = (page) => page.evaluate(() => window.attnscope.state());

/** Waits until the page runs the model `key` (null: the user's files) and has run it. */
async function waitForModel(page, key, timeout = 120_000) {
  await page.waitForFunction((k) => {
    // Right after a reload the test hook may not be installed yet.
    const s = window.attnscope?.state();
    return !!s && s.modelKey === k && s.runs > 0 && s.phase === 'ready' && !document.querySelector('[data-testid=model-progress]');
  }, key, { timeout });
  // The new model has run on the text at least once since it opened.
  const runs = (await state(page)).runs;
  await page.waitForFunction((r) => window.attnscope.state().runs >= r, runs);
}

async function openDrawer(page) {
  if (!(await page.locator('[data-testid=model-drawer]').isVisible())) await page.click('[data-testid=model-button]');
}

async function openByName(page, name) {
  await openDrawer(page);
  await page.fill('[data-testid=model-id]', name);
  await page.click('[data-testid=model-open]');
}

const message = (page) => page.locator('[data-testid=model-message]').innerText({ timeout: 60_000 });
/** Requests since `mark` for weight files, with whether they were whole-file GETs. */
const weightRequests = (mark) => hub.requests.slice(mark).filter((r) => r.path.endsWith('.safetensors') && r.method === 'GET');
const keptKeys = (page) => page.evaluate(async () => (await window.attnscopeModels.list()).map((m) => m.key));

/** The page still runs the model it had: typing re-runs it, without errors. */
async function stillWorks(page, errors) {
  const runs = (await state(page)).runs;
  await typeText(page, 'A cat.');
  await page.waitForFunction((r) => window.attnscope.state().runs > r, runs, { timeout: 60_000 });
  assert.deepEqual(errors.filter((e) => !/Failed to load resource/.test(e)), []);
}

test('a tiny grouped-KV Llama opens by hub name with progress to the total; a reload with the hub offline opens it from the cache', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, appUrl());
    hub.set({ bytesPerSecond: 2_000_000 });
    const mark = hub.requests.length;
    // Follow the bar: the largest value it showed, and its maximum.
    await page.evaluate(() => {
      window.seenProgress = { value: 0, max: 0, text: '' };
      new MutationObserver(() => {
        const bar = document.querySelector('[data-testid=model-progress] progress');
        if (bar) {
          window.seenProgress.value = Math.max(window.seenProgress.value, Number(bar.value));
          window.seenProgress.max = Number(bar.max);
          window.seenProgress.text = document.querySelector('[data-testid=model-progress]').innerText;
        }
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    await openByName(page, 'test/llama-tiny-gqa');
    await waitForModel(page, 'test/llama-tiny-gqa');
    hub.set({ bytesPerSecond: 0 });
    const s = await state(page);
    assert.deepEqual([s.nLayer, s.nHead], [2, 4]);
    assert.match(s.model, /^test\/llama-tiny-gqa · 2 layers × 4 heads/);
    assert.match(await message(page), /kept on this device/);
    const seen = await page.evaluate(() => window.seenProgress);
    const fileBytes = ['config.json', 'tokenizer.json', 'model.safetensors']
      .map((f) => hub.requests.slice(mark).filter((r) => r.path === `/test/llama-tiny-gqa/resolve/main/${f}` && !r.range)
        .reduce((n, r) => n + r.sent, 0));
    const total = fileBytes.reduce((a, b) => a + b, 0);
    assert.equal(seen.max, total, 'the bar spans every file of the model');
    assert.ok(seen.value >= 0.9 * total, `the bar moved to the total (${seen.value} of ${total})`);
    assert.match(seen.text, /MB\/s, about \d+ s left/);
    // Headers were read with Range requests before the weights were fetched whole.
    const weights = weightRequests(mark);
    assert.deepEqual(weights.slice(0, 2).map((r) => r.range), ['bytes=0-7', weights[1].range]);
    assert.match(weights[1].range, /^bytes=8-\d+$/);
    assert.deepEqual(await keptKeys(page), ['hub:test/llama-tiny-gqa@main']);
    await stillWorks(page, errors);

    // Offline: the hub answers nothing; the link's model is kept, so it opens without asking.
    hub.set({ offline: true });
    const offlineMark = hub.requests.length;
    await page.goto(appUrl('#model=test%2Fllama-tiny-gqa&text=Hello'));
    await page.reload();
    await waitForModel(page, 'test/llama-tiny-gqa');
    assert.equal(await page.locator('[data-testid=model-plan]').count(), 0, 'a kept model needs no OK');
    assert.match(await message(page), /from this device, no network/);
    assert.equal(hub.requests.length, offlineMark, 'no request reached the hub');
  } finally {
    hub.set({ offline: false, bytesPerSecond: 0 });
    await browser.close();
  }
});

test('cancel leaves nothing in the cache and the current model working; a retry opens the sharded model', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, appUrl());
    hub.set({ bytesPerSecond: 200_000 });
    await openByName(page, 'test/llama-tiny-sharded');
    await page.waitForFunction(() => {
      const bar = document.querySelector('[data-testid=model-progress] progress');
      return bar && Number(bar.value) > 0;
    }, null, { timeout: 60_000 });
    await page.click('[data-testid=model-cancel]');
    assert.match(await message(page), /cancelled; nothing was kept\. default stays/);
    assert.deepEqual(await keptKeys(page), []);
    assert.equal((await state(page)).modelKey, 'default');
    await stillWorks(page, errors);

    hub.set({ bytesPerSecond: 0 });
    await openByName(page, 'test/llama-tiny-sharded');
    await waitForModel(page, 'test/llama-tiny-sharded');
    assert.deepEqual(await keptKeys(page), ['hub:test/llama-tiny-sharded@main']);
    // Kept shards open with the hub offline too (model.safetensors is not asked for).
    hub.set({ offline: true });
    const offlineMark = hub.requests.length;
    await page.reload();
    await openByName(page, 'test/llama-tiny-sharded');
    await waitForModel(page, 'test/llama-tiny-sharded');
    assert.equal(hub.requests.length, offlineMark, 'no request reached the hub');
    hub.set({ offline: false });
    // Delete it from "Models on this device".
    await openDrawer(page);
    await page.locator('[data-testid=kept-delete]').click();
    await page.waitForFunction(async () => (await window.attnscopeModels.list()).length === 0);
  } finally {
    hub.set({ bytesPerSecond: 0 });
    await browser.close();
  }
});

test('a full storage quota keeps the model in memory for this visit and says so', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const context = await browser.newContext();
    // Every put of a model file fails as a full quota would.
    await context.addInitScript(() => {
      const put = Cache.prototype.put;
      Cache.prototype.put = function (request, response) {
        const url = typeof request === 'string' ? request : request.url;
        if (url.includes('attnscope-etag=')) return Promise.reject(new DOMException('quota', 'QuotaExceededError'));
        return put.call(this, request, response);
      };
    });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(appUrl());
    await page.waitForFunction(() => window.attnscope && window.attnscope.state().phase === 'ready', null, { timeout: 120_000 });
    await openByName(page, 'test/llama-tiny-gqa');
    await waitForModel(page, 'test/llama-tiny-gqa');
    assert.match(await message(page), /is open for this visit only: this device has no room left to keep it \(storage quota\)/);
    assert.deepEqual(await keptKeys(page), []);
    await stillWorks(page, errors);
  } finally {
    await browser.close();
  }
});

test('a model over a lowered limit is refused before any weight byte is fetched; bad files say why and the current model stays', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, appUrl());
    await page.evaluate(() => window.attnscope.setLimits({ maxBinding: 20_000 }));
    let mark = hub.requests.length;
    await openByName(page, 'test/llama-tiny-gqa');
    assert.match(await message(page), /test\/llama-tiny-gqa was not opened: tensor `model\.layers\.\d\.[\w.]+_proj\.weight` takes [\d.]+ MB on the GPU, but this device allows at most 0\.0 MB per GPU buffer/);
    for (const r of weightRequests(mark)) {
      assert.ok(r.range, `only Range reads of weights: ${r.path}`);
      assert.ok(r.sent <= 4096, `only the header: ${r.path} ${r.range} sent ${r.sent}`);
    }
    await page.evaluate(() => window.attnscope.setLimits(null));

    for (const [name, want] of [
      ['test/bad-truncated', /truncated/],
      ['test/bad-shapes', /has shape \[\d+(, \d+)*\], but config\.json implies/],
      ['test/bad-arch', /model_type `mamba` is not supported/],
      ['test/no-such-model', /not found \(HTTP 404\)/],
    ]) {
      await page.click('[data-testid=model-message] button').catch(() => {});
      await openByName(page, name);
      const text = await message(page);
      assert.match(text, want, name);
      assert.match(text, /default stays/, name);
      assert.equal((await state(page)).modelKey, 'default');
    }
    mark = hub.requests.length;
    assert.deepEqual(await keptKeys(page), [], 'nothing bad was kept');
    await stillWorks(page, errors);
  } finally {
    await browser.close();
  }
});

test('a link with model= asks before downloading; the picker and drag-and-drop open the user\'s files', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const mark = hub.requests.length;
    const { page, errors } = await openApp(browser, appUrl('#model=test%2Fllama-tiny-gqa'));
    const plan = page.locator('[data-testid=model-plan]');
    await plan.waitFor({ timeout: 60_000 });
    assert.match(await plan.innerText(), /This link asks for the model test\/llama-tiny-gqa\? 0\.6M parameters \(F16\) · 1\.3 MB to download · 1\.2 MB of GPU memory; this device allows \d+ MB per GPU buffer and \d+ MB of WebAssembly memory/);
    assert.ok(weightRequests(mark).every((r) => r.range), 'nothing but headers before the OK');
    await page.click('[data-testid=model-decline]');
    assert.equal((await state(page)).modelKey, 'default');

    const dir = path.join(models, 'test/llama-tiny-gqa');
    await page.setInputFiles('[data-testid=model-picker]',
      ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => path.join(dir, f)));
    await waitForModel(page, null);
    assert.match((await state(page)).model, /^your files · 2 layers × 4 heads/);
    assert.match(await message(page), /from your files/);

    // Back to the built-in model, then the sharded model's files dropped on the drop zone.
    await openDrawer(page);
    await page.click('[data-testid=preset-default]');
    await waitForModel(page, 'default');
    await page.evaluate(async (base) => {
      const names = ['config.json', 'tokenizer.json', 'model.safetensors.index.json',
        'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
      const data = new DataTransfer();
      for (const n of names) {
        const body = await (await fetch(`${base}/files/test/llama-tiny-sharded/${n}`)).blob();
        data.items.add(new File([body], n));
      }
      document.querySelector('[data-testid=model-drop]').dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
    }, hub.url);
    await waitForModel(page, null);
    // A file that is not a model: its message, and the model before stays.
    await page.setInputFiles('[data-testid=model-picker]', { name: 'model.gguf', mimeType: 'application/octet-stream', buffer: Buffer.from('not a gguf file at all') });
    assert.match(await message(page), /Your files was not opened: .*gguf/i);
    await stillWorks(page, errors);
  } finally {
    await browser.close();
  }
});

test('two pages of one site asking for the same model download it once (as embedded widgets do)', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const context = await browser.newContext();
    const open = async () => {
      const page = await context.newPage();
      await page.goto(appUrl('#model=test%2Fllama-tiny-sharded&text=Hi'));
      await page.locator('[data-testid=model-plan]').waitFor({ timeout: 120_000 });
      return page;
    };
    const pages = [await open(), await open()];
    hub.set({ bytesPerSecond: 1_000_000 });
    const mark = hub.requests.length;
    await Promise.all(pages.map((p) => p.click('[data-testid=model-download]')));
    await Promise.all(pages.map((p) => waitForModel(p, 'test/llama-tiny-sharded')));
    const whole = hub.requests.slice(mark).filter((r) => r.method === 'GET' && !r.range);
    assert.equal(whole.length, 5, `each file once: ${whole.map((r) => r.path).join(', ')}`);
    await pages[0].evaluate(() => window.attnscopeModels.remove('hub:test/llama-tiny-sharded@main'));
  } finally {
    hub.set({ bytesPerSecond: 0 });
    await browser.close();
  }
});

test('GPT-2 small\'s shape by URL asks (250 MB), opens with 12 × 12 heads, and the built-in model after it fits the selection', { timeout: 600_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, appUrl('#text=Hi'));
    const before = (await state(page)).wasmMemoryBytes;
    await openByName(page, `${hub.url}/files/test/gpt2-small-random`);
    const plan = page.locator('[data-testid=model-plan]');
    await plan.waitFor({ timeout: 60_000 });
    assert.match(await plan.innerText(), /^Open gpt2-small-random\? 124\.4M parameters \(F16\) · 250 MB to download · 249 MB of GPU memory/);
    await page.click('[data-testid=model-download]');
    await waitForModel(page, `${hub.url}/files/test/gpt2-small-random`, 400_000);
    const s = await state(page);
    assert.deepEqual([s.nLayer, s.nHead], [12, 12]);
    // The downloaded file stays a JavaScript array, read a tensor at a time into the
    // weights (16-bit kept 16-bit), and the GPU's buffers are written from them in place:
    // WebAssembly memory grows by about the weights (261 MB seen; 413 MB with each GPU
    // buffer mapped through a copy of it).
    const grown = s.wasmMemoryBytes - before;
    console.log(`GPT-2 small's shape (250 MB of F16 safetensors): WebAssembly memory ${(before / 1e6).toFixed(0)} MB before, grew by ${(grown / 1e6).toFixed(0)} MB`);
    assert.ok(grown < 1.2 * 250e6, `wasm memory grew by ${grown} bytes`);
    // The last head of the last layer, then the 2 × 4 built-in model: the selection is fitted, nothing panics.
    await page.evaluate(() => { location.hash = location.hash.replace(/layer=\d+/, 'layer=11').replace(/head=\d+/, 'head=11'); });
    await page.waitForFunction(() => window.attnscope.state().layer === 11 && window.attnscope.state().head === 11);
    await openDrawer(page);
    await page.click('[data-testid=preset-default]');
    await waitForModel(page, 'default');
    const after = await state(page);
    assert.deepEqual([after.layer, after.head], [1, 3]);
    await stillWorks(page, errors);
  } finally {
    await browser.close();
  }
});

test('SmolLM2 opens from one GGUF file on the hub', { timeout: 600_000, skip: !existsSync(path.join(models || '', 'HuggingFaceTB/SmolLM2-135M-Instruct-GGUF')) && 'SmolLM2 is not in the cache (python3 tools/get_smollm2.py)' }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, appUrl('#text=Hi'));
    const name = 'HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf';
    const before = (await state(page)).wasmMemoryBytes;
    await openByName(page, name);
    await page.locator('[data-testid=model-plan]').waitFor({ timeout: 60_000 });
    assert.match(await page.locator('[data-testid=model-plan]').innerText(), /98 MB to download \(one GGUF file/);
    await page.click('[data-testid=model-download]');
    await waitForModel(page, name, 400_000);
    const s = await state(page);
    assert.deepEqual([s.nLayer, s.nHead], [30, 9]);
    console.log(`SmolLM2 (98 MB of Q4_1 GGUF): WebAssembly memory ${(before / 1e6).toFixed(0)} MB before, grew by ${((s.wasmMemoryBytes - before) / 1e6).toFixed(0)} MB`);
    assert.deepEqual(errors.filter((e) => !/Failed to load resource/.test(e)), []);
  } finally {
    await browser.close();
  }
});

test('SmolLM2 on the CPU: typing and generating run in steps with no main-thread task over 50 ms, and an ablation in slices', { timeout: 600_000, skip: !existsSync(path.join(models || '', 'HuggingFaceTB/SmolLM2-135M-Instruct-GGUF')) && 'SmolLM2 is not in the cache (python3 tools/get_smollm2.py)' }, async () => {
  const browser = await launch({ webgpu: false });
  try {
    const url = `${server.url}?backend=cpu&hub=${encodeURIComponent(hub.url)}#text=${encodeURIComponent('The capital of France')}&t=0`;
    const { page, errors } = await openApp(browser, url);
    const name = 'HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf';
    await openByName(page, name);
    await page.locator('[data-testid=model-plan]').waitFor({ timeout: 60_000 });
    // Every main-thread task over 50 ms (the Long Tasks API's threshold): first while the model
    // downloads and is read (a block of weights at a time), then while typing and generating.
    await page.evaluate(() => {
      window.longTasks = [];
      new PerformanceObserver((list) => window.longTasks.push(...list.getEntries().map((e) => Math.round(e.duration))))
        .observe({ type: 'longtask' });
    });
    await page.click('[data-testid=model-download]');
    await waitForModel(page, name, 400_000);
    assert.equal((await state(page)).gpu, false);
    const loading = await page.evaluate(() => window.longTasks.splice(0));
    console.log(`SmolLM2 on the CPU, long tasks while it downloads and is read (ms): ${JSON.stringify(loading)}`);
    // Read at once, the weights took one task of ~1.4 s here. Read a weight matrix (and a piece
    // of the token table) at a time, the tokenizer built from its parts with pauses between them,
    // the download read by range (never copied whole into WebAssembly memory), the first run's steps in tasks apart
    // from the new model's panels: none over 50 ms seen (before the tokenizer's pauses and the
    // charts' ResizeObserver, 54–82 ms). Bounded at 100 for a busy machine.
    assert.ok(Math.max(0, ...loading) < 100, `no long task while the model is read: ${JSON.stringify(loading)}`);
    // Whether the runs went in steps that gave the thread back: the page counts the times (the
    // working sign says the steps done only in a run longer than a quarter of a second).
    const yieldsBefore = (await state(page)).yields;
    const settled = (runs) => page.waitForFunction((r) => {
      const s = window.attnscope.state();
      return s.runs > r && !document.querySelector('[data-testid=working]');
    }, runs, { timeout: 120_000 });
    const box = page.locator('#text-input');
    await box.click();
    await box.press('End');
    let runs = (await state(page)).runs;
    await box.pressSequentially(' is', { delay: 15 });
    await settled(runs);
    const typed = await state(page);
    assert.equal(typed.text, 'The capital of France is');
    // A greedy token: the step waits for the page's run in steps, then samples.
    runs = typed.runs;
    await page.locator('.gen-step').click();
    await page.waitForFunction(() => window.attnscope.state().generated.length === 1, null, { timeout: 120_000 });
    await settled(runs);
    const longTasks = await page.evaluate(() => window.longTasks.splice(0));
    const yields = (await state(page)).yields - yieldsBefore;
    console.log(`SmolLM2 on the CPU, long tasks while typing and generating (ms): ${JSON.stringify(longTasks)}; the thread given back ${yields} times`);
    assert.ok(yields > 0, 'the runs went in steps, giving the thread back between them');
    assert.deepEqual(longTasks, [], 'no main-thread task over 50 ms');
    // Ablating a layer-0 head (by the link, so the page stays where it is) re-runs every layer. At once that is
    // one task of about 7 rows × 270 MFLOP; a layer (and a piece of the LM head) at a time, slices
    // of ~20 ms: none over 50 ms seen. Bounded at 100 ms for a busy machine.
    await page.evaluate(() => { location.hash = `${location.hash}&ablate=0.0`; });
    await page.locator('[data-testid=intervened-banner]').waitFor({ timeout: 120_000 });
    assert.equal(await page.locator('[data-testid=ablation-result]').getAttribute('data-heads'), '0.0');
    const ablating = await page.evaluate(() => window.longTasks.splice(0));
    console.log(`SmolLM2 on the CPU, long tasks while an ablation is applied (ms): ${JSON.stringify(ablating)}`);
    assert.ok(Math.max(0, ...ablating) < 100, `the ablation is applied in slices: ${JSON.stringify(ablating)}`);
    // The logit lens on screen: read a point at a time at the last few positions (at once, the
    // whole text's lens was one task of seconds), its progress shown; its last point's top
    // token is the model's own most likely next token.
    await page.locator('.lens-panel').scrollIntoViewIfNeeded();
    await page.locator('[data-testid=lens-progress]').waitFor({ timeout: 60_000 });
    await page.locator('[data-testid=lens-table]').waitFor({ timeout: 120_000 });
    const lensHint = await page.locator('[data-testid=lens-positions]').innerText();
    assert.match(lensHint, /^The last 4 of \d+ positions: on the CPU/);
    const lastCell = page.locator('[data-testid=lens-table] tbody tr').last().locator('.lens-cell').last();
    assert.equal(Number(await lastCell.getAttribute('data-id')), (await state(page)).next[0].id);
    // The sweep: each head re-runs the model from its layer (layer 0: every layer), a layer a task.
    await page.locator('.ablation-panel').scrollIntoViewIfNeeded();
    await page.locator('.sweep-button').click();
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=sweep-status]')?.dataset.done) >= 2,
      null, { timeout: 120_000 });
    const reading = await page.evaluate(() => window.longTasks.splice(0));
    console.log(`SmolLM2 on the CPU, long tasks while the lens and two heads of the sweep are read (ms): ${JSON.stringify(reading)}`);
    // Seen: none over 50 ms. Before: one of 54–109 ms (each lens position sorted the whole
    // vocabulary, and the tables were built after a slice of the head). Bounded at 100.
    assert.ok(Math.max(0, ...reading) < 100, `the lens and the sweep run in slices: ${JSON.stringify(reading)}`);
    // The dilution panel: filler appended a piece of rows at a time until its traces would pass 256 MiB
    // (636 tokens of SmolLM2, said so, its traces keeping no T×T weights, the last logits row alone and
    // none of the stages it computes when read; 304 keeping those, 248 with every logits row, 206 with the weights
    // too, 169 when a
    // trace kept raw scores and K and V per query head;
    // before, it grew them to the 8,192-token context, far past
    // the 4 GiB of WebAssembly memory), and SmolLM2's attention sinks on the first token.
    await page.locator('.dilution-panel').scrollIntoViewIfNeeded();
    await page.locator('.dilution-run').click();
    await page.locator('[data-testid=dilution-note]').waitFor({ timeout: 300_000 });
    assert.match(await page.locator('[data-testid=dilution-note]').innerText(), /^Stopped at 636 tokens, before this model's context \(8192\) is full/);
    const sinks = await page.locator('[data-testid=sink-table] td[data-sink]').evaluateAll((tds) => tds.map((td) => Number(td.dataset.sink)));
    assert.equal(sinks.length, 30 * 9, 'every head of SmolLM2');
    assert.ok(sinks.filter((v) => v > 0.5).length > 30, `heads parking over half their weight on the first token: ${sinks.filter((v) => v > 0.5).length}`);
    const diluting = await page.evaluate(() => window.longTasks.splice(0));
    console.log(`SmolLM2 on the CPU, long tasks while the dilution panel appends filler (ms): ${JSON.stringify(diluting)}`);
    // Seen: none over 50 ms (64–131 ms before the LM head went a piece of the vocabulary per
    // step and its logits were allocated in 8 MB steps); on stop 48's machine eight of 52–61 ms,
    // the heads' weights read in the run's last slice (now slices of their own: none seen).
    // Bounded at 100 for a busy machine.
    assert.ok(Math.max(0, ...diluting) < 100, `the dilution runs in slices: ${JSON.stringify(diluting)}`);
    // A long text pasted, L0 H0 still ablated: its first run takes each block on a piece of its
    // rows at a time, and the ablation's re-run each layer's projection and MLP the same way
    // (a whole block on 267 rows was a step of 65–100 ms).
    await page.evaluate(() => { window.longTasks.splice(0); });
    await page.evaluate(() => window.scrollTo(0, 0));
    runs = (await state(page)).runs;
    const long = 'The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun. '.repeat(14);
    await page.locator('#text-input').fill(long);
    await settled(runs);
    // The run, then the ablation applied to it (a second bump of the run count).
    await page.waitForFunction((r) => window.attnscope.state().runs >= r + 2, runs, { timeout: 120_000 });
    await page.locator('[data-testid=intervened-banner]').waitFor({ timeout: 60_000 });
    const pasted = await state(page);
    assert.ok(pasted.tokens.length > 200 && pasted.inputError === null, `${pasted.tokens.length} tokens, ${pasted.inputError}`);
    const pasting = await page.evaluate(() => window.longTasks.splice(0));
    console.log(`SmolLM2 on the CPU, long tasks while a ${pasted.tokens.length}-token text runs (ms): ${JSON.stringify(pasting)}`);
    // Seen: none over 50 ms. Before: 145–162 ms (the ablation's LM head output, 52 MB, zeroed
    // at once) and, earlier, 29 tasks of 65–135 ms (a block at once). Bounded at 100 for a busy machine.
    assert.ok(Math.max(0, ...pasting) < 100 && pasting.length < 5, `a long text's first run goes in slices: ${JSON.stringify(pasting)}`);
    assert.deepEqual(errors.filter((e) => !/Failed to load resource/.test(e)), []);
  } finally {
    await browser.close();
  }
});
