// State in the address (issue 8, part 1): a link restores every field, the
// address follows the page, a reload keeps the screen, and bad fields are
// named, ignored and never run as markup.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, copyFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { serveDist, launch, openApp, cliTrace, traceMatrix, maxAbsDiff, imageStats, MODEL_CONFIG } from './harness.mjs';

const { n_layer: L } = MODEL_CONFIG;

let server;
before(async () => { server = await serveDist(); });
after(async () => { await server.close(); });

test('a link restores the screen, the address follows changes, a reload keeps them', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const text = 'Tom & Jerry = "friends" #1, 100%';
    const hash = `#text=${encodeURIComponent(text)}&model=default&layer=${L - 1}&head=3&stage=scaled&mask=window%3A3&lock=4%2C2&t=0.5&theme=dark&seed=9&topk=40&topp=0.9`;
    const { page, errors } = await openApp(browser, `${server.url}${hash}`);
    await page.waitForFunction((t) => {
      const s = window.attnscope.state();
      return s.text === t && s.renders > 0 && s.hover !== null;
    }, text, { timeout: 60_000 });
    const s = await page.evaluate(() => window.attnscope.state());
    assert.deepEqual([s.layer, s.head, s.stage, s.mask, s.locked, s.temperature], [L - 1, 3, 'scaled', 'window:3', true, 0.5]);
    assert.deepEqual([s.hover.row, s.hover.col], [4, 2]);
    assert.equal(await page.evaluate(() => document.documentElement.getAttribute('data-theme')), 'dark');
    assert.deepEqual([s.seed, s.topK], [9, 40], 'seed and top-k');
    assert.ok(Math.abs(s.topP - 0.9) < 1e-6, `top-p ${s.topP}`);
    const ref = cliTrace(text, 'window:3');
    const snap = await page.evaluate(() => window.attnscope.snapshot());
    assert.ok(maxAbsDiff(snap.matrix, traceMatrix(ref, L - 1, 3, 'scaled'), 'restored view') <= 1e-4);
    assert.equal(await page.locator('[data-testid=link-note]').count(), 0, 'a good link gives no message');

    // Change the view: the address follows (replaceState: no new history entries).
    const historyBefore = await page.evaluate(() => history.length);
    await page.locator('.layer-button').nth(0).click();
    await page.locator('[data-stage=weights]').click();
    await page.locator('[data-mask=causal]').click();
    await page.waitForFunction(() => /layer=0/.test(location.hash) && /stage=weights/.test(location.hash)
      && /mask=causal/.test(location.hash), null, { timeout: 10_000 });
    assert.equal(await page.evaluate(() => history.length), historyBefore, 'no history entry per change');
    await page.reload();
    await page.waitForFunction((t) => {
      const s = window.attnscope && window.attnscope.state();
      return s && s.text === t && s.renders > 0;
    }, text, { timeout: 60_000 });
    const r = await page.evaluate(() => window.attnscope.state());
    assert.deepEqual([r.layer, r.head, r.stage, r.mask, r.temperature], [0, 3, 'weights', 'causal', 0.5]);
    assert.deepEqual(errors, [], 'no page errors');
  } finally {
    await browser.close();
  }
});

test('bad link fields are named and ignored, and markup in the text stays text', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const evil = '<img src=x onerror="window.__pwned=1">';
    const hash = `#text=${encodeURIComponent(evil)}&layer=999&head=-1&stage=nope&zoom=3`;
    const { page } = await openApp(browser, `${server.url}${hash}`);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    const note = await page.locator('[data-testid=link-note]').innerText();
    assert.match(note, /head=-1/);
    assert.match(note, /stage=nope/);
    assert.match(note, /zoom=3/);
    const s = await page.evaluate(() => window.attnscope.state());
    assert.equal(s.text, evil, 'the text is restored as text');
    assert.ok(s.layer < L, `the layer is clamped to the model (${s.layer})`);
    assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no script ran');
    assert.equal(await page.locator('img[src=x]').count(), 0, 'no markup was injected');
  } finally {
    await browser.close();
  }
});

test('export: PNG at 2×, SVG, CSV, JSON and an offline HTML snapshot of the shown view', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const text = 'The cat sat on the mat';
    const { page } = await openApp(browser, `${server.url}#text=${encodeURIComponent(text)}&stage=weights&head=1`);
    await page.waitForFunction((t) => {
      const s = window.attnscope.state();
      return s.text === t && s.renders > 0;
    }, text, { timeout: 60_000 });
    const snap = await page.evaluate(() => window.attnscope.snapshot());
    const t = snap.gpuTokens;
    const files = {};
    const paths = {};
    for (const f of ['png', 'svg', 'csv', 'json', 'html']) {
      const [download] = await Promise.all([page.waitForEvent('download'), page.locator(`[data-export=${f}]`).click()]);
      assert.match(download.suggestedFilename(), new RegExp(`^attnscope-weights-L0H1\\.${f}$`));
      paths[f] = await download.path();
      files[f] = await readFile(paths[f]);
    }
    // The HTML snapshot opens with the network off and fetches nothing.
    const offline = await browser.newContext({ offline: true });
    const snapshotPage = await offline.newPage();
    const fetched = [];
    snapshotPage.on('request', (r) => fetched.push(r.url()));
    const htmlFile = path.join(await mkdtemp(path.join(tmpdir(), 'attnscope-')), 'snapshot.html');
    await copyFile(paths.html, htmlFile); // downloads are saved without their extension
    await snapshotPage.goto(`file://${htmlFile}`);
    assert.equal(await snapshotPage.locator('svg rect[x]').count(), t * t + 11, 'the heatmap is in the page');
    assert.equal(await snapshotPage.locator('td').count(), t * t, 'and every value in the table');
    assert.match(await snapshotPage.locator('.text').innerText(), /The cat sat on the mat/);
    assert.deepEqual(fetched.filter((u) => !u.startsWith('file:')), [], 'nothing fetched');
    await offline.close();
    const svg = files.svg.toString();
    assert.equal((svg.match(/<rect x=/g) || []).length, t * t + 11, 'one rect per cell and 11 legend swatches');
    assert.equal((svg.match(/url\(#masked\)/g) || []).length, (t * (t - 1)) / 2, 'the causal mask hatched');
    const width = Number(/width="([\d.]+)"/.exec(svg)[1]);
    const png = files.png;
    assert.equal(png.subarray(1, 4).toString(), 'PNG');
    assert.equal(png.readUInt32BE(16), Math.round(2 * width), 'the PNG is the figure at 2×');
    const stats = await imageStats(page, `data:image/png;base64,${png.toString('base64')}`);
    assert.ok(stats.distinctColours > 50 && stats.stdLuminance > 10, `the PNG is not blank: ${JSON.stringify(stats)}`);
    const json = JSON.parse(files.json.toString());
    // The JSON's decimals are each f32's shortest form: read back as f32 they are the map's very values.
    const f32 = (v) => (v === null ? null : Math.fround(v));
    assert.equal(maxAbsDiff(json.values.map((r) => r.map(f32)), snap.matrix.map((r, i) => r.map((v, j) => (j > i ? null : v))), 'json'), 0);
    const csv = files.csv.toString().trim().split('\n');
    assert.equal(csv.length, t + 1, 'a header and a row per token');
    assert.match(await page.locator('[data-testid=export-note]').innerText(), /Saved attnscope-weights-L0H1\.html/);
  } finally {
    await browser.close();
  }
});

test('after the first visit the page works offline', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const text = 'The lamp was lit at the venue';
    const { page, errors } = await openApp(browser, `${server.url}#text=${encodeURIComponent(text)}`);
    await page.waitForFunction((t) => window.attnscope.state().text === t && window.attnscope.state().renders > 0,
      text, { timeout: 60_000 });
    // The service worker keeps the page, its script, wasm, styles and the model's three files.
    await page.waitForFunction(() => window.attnscopeOffline.cached >= 7, null, { timeout: 60_000 });
    // The model loader (models.js) is not part of a first visit: it comes when first called
    // (here: the list of kept models), and the worker keeps it then.
    const before = await page.evaluate(() => window.attnscopeOffline.cached);
    assert.deepEqual(await page.evaluate(async () => window.attnscopeModels.list()), []);
    await page.waitForFunction((n) => window.attnscopeOffline.cached === n + 1, before, { timeout: 60_000 });
    await page.context().setOffline(true);
    await page.reload();
    await page.waitForFunction((t) => {
      const s = window.attnscope && window.attnscope.state();
      return s && s.text === t && s.renders > 0;
    }, text, { timeout: 60_000 });
    const snap = await page.evaluate(() => window.attnscope.snapshot());
    const ref = cliTrace(text);
    assert.ok(maxAbsDiff(snap.matrix, traceMatrix(ref, 0, 0, 'weights'), 'offline') <= 1e-4, 'the same numbers offline');
    // Offline, the kept model loader still loads (models kept on this device open offline).
    assert.deepEqual(await page.evaluate(async () => window.attnscopeModels.list()), []);
    assert.deepEqual(errors.filter((e) => !/ERR_INTERNET_DISCONNECTED|Failed to fetch/i.test(e)), [], 'no page errors');
  } finally {
    await browser.close();
  }
});

test('a service worker that takes control after the model was fetched keeps it without a second download', { timeout: 300_000 }, async () => {
  // sw.js is answered only once the model's request has come, so the worker's list of
  // what to keep names a model it never saw: it must take the page's copy, not fetch again.
  const isModel = (p) => p.endsWith('model.safetensors.shuffled');
  const late = await serveDist({
    hold: async (p, requests) => {
      if (!p.endsWith('/sw.js')) return;
      for (let i = 0; i < 600 && !requests.some(isModel); i++) await new Promise((r) => setTimeout(r, 50));
    },
  });
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, late.url);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    await page.waitForFunction(() => window.attnscopeOffline.cached >= 7, null, { timeout: 60_000 });
    const downloads = late.requests.filter(isModel);
    assert.equal(downloads.length, 1, `the model is downloaded once (${downloads.length})`);
    await page.context().setOffline(true);
    await page.reload();
    await page.waitForFunction(() => {
      const s = window.attnscope && window.attnscope.state();
      return s && s.phase === 'ready' && s.renders > 0;
    }, null, { timeout: 60_000 });
    assert.deepEqual(errors.filter((e) => !/ERR_INTERNET_DISCONNECTED|Failed to fetch/i.test(e)), [], 'no page errors');
  } finally {
    await browser.close();
    await late.close();
  }
});

test('a link with the largest seed compares three seeds, and a later link naming a missing layer is clamped and said', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, `${server.url}#seed=18446744073709551615`);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    await page.locator('.gen-compare-button').click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=branches] .branch-row').length === 3, null,
      { timeout: 60_000 });
    const seeds = await page.locator('.branch-seed').allInnerTexts();
    assert.deepEqual(seeds, ['seed 18446744073709551615', 'seed 0', 'seed 1'], 'the seeds wrap after the largest');

    // After load, a hash change to a layer and head the model lacks: the nearest is shown, and the page says so.
    const renders = (await page.evaluate(() => window.attnscope.state())).renders;
    await page.evaluate(() => { location.hash = 'layer=4095&head=4095'; });
    await page.waitForFunction((r) => window.attnscope.state().renders > r, renders, { timeout: 30_000 });
    const s = await page.evaluate(() => window.attnscope.state());
    assert.deepEqual([s.layer, s.head], [L - 1, MODEL_CONFIG.n_head - 1], 'clamped to the model');
    const note = await page.locator('[data-testid=link-note]').innerText();
    assert.match(note, /layer 4095, head 4095/);
    const snap = await page.evaluate(() => window.attnscope.snapshot());
    assert.ok(snap.matrix.length > 0, 'the map shows the nearest head');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('export of a text holding U+FFFF: the SVG is well-formed XML and the PNG is made', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const text = 'odd \uffff char & <b>';
    const { page, errors } = await openApp(browser, `${server.url}#text=${encodeURIComponent(text)}&stage=weights`);
    await page.waitForFunction((t) => window.attnscope.state().text === t && window.attnscope.state().renders > 0,
      text, { timeout: 60_000 });
    const files = {};
    for (const f of ['svg', 'png']) {
      const [download] = await Promise.all([page.waitForEvent('download'), page.locator(`[data-export=${f}]`).click()]);
      files[f] = await readFile(await download.path());
    }
    const svgOk = await page.evaluate((svg) => {
      const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
      return doc.getElementsByTagName('parsererror').length === 0;
    }, files.svg.toString('utf8'));
    assert.ok(svgOk, 'the SVG parses as XML');
    assert.equal(files.png.subarray(1, 4).toString(), 'PNG', 'the PNG export worked');
    assert.match(await page.locator('[data-testid=export-note]').innerText(), /^Saved /);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
