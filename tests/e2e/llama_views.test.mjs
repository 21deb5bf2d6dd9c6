// Every view on a Llama-family model (issue 15, item 5): a random grouped-head
// Llama is served in place of models/default (page.route) and every panel is
// walked on WebGPU and on the CPU fallback: no error, Llama's words (RMSNorm,
// shared KV heads, the grouped KV-cache saving), the ten stages of a grouped
// head (Q and K before RoPE too) against `attnscope trace` of the same files,
// the Positions panel against `attnscope positions`, presenter mode and
// axe-core; the model grid of SmolLM2's shape (30 × 9 on 3 KV heads) drawn
// and chosen from by keyboard and click; GPT-2's learned-position map; a
// 1,019-token text drawn, zoomed and hovered on both backends.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serveDist, launch, typeText, canvasStats, canvasHash, traceMatrix, maxAbsDiff, screenshot, CLI, SCREENS, MODEL_CONFIG } from './harness.mjs';
import { openEveryPanel, audit, serious, describe } from './a11y.mjs';
import { randomLlama, writeModelDir, routeModel, TINY_GQA, SMOLLM2_GRID } from './random_llama.mjs';

const TEXT = 'Mr Darcy walked into the room, and Elizabeth looked at him.';
// A RoPE model's stages: Q and K before the rotation, then the eight every model has.
const STAGES = ['q_pre', 'k_pre', 'q', 'k', 'v', 'raw', 'scaled', 'masked', 'weights', 'out'];
let server;
const tiny = randomLlama(TINY_GQA, { seed: 7 });
const tinyDir = writeModelDir(path.join(os.tmpdir(), `attnscope-e2e-llama-gqa-${process.pid}`), tiny);

before(async () => { server = await serveDist(); });
after(async () => { await server.close(); rmSync(tinyDir, { recursive: true, force: true }); });

/** The trace's matrix of a page stage, the RoPE stages included. */
function stageMatrix(reference, layer, head, stage) {
  const h = reference.layers[layer].heads[head];
  if (stage === 'q_pre') return h.q_pre_rope;
  if (stage === 'k_pre') return h.k_pre_rope;
  return traceMatrix(reference, layer, head, stage);
}

function cli(args) {
  return JSON.parse(execFileSync(CLI, args, { maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'ignore'] }).toString());
}

function trace(dir, text) {
  const out = execFileSync(CLI, ['trace', '--model', dir, '--text', text, '--backend', 'cpu'], { maxBuffer: 256 << 20 });
  return JSON.parse(out.toString());
}

/** A page whose models/default is `files`; service workers blocked so page.route sees every fetch. */
async function openWith(browser, files, hash = '', viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport, serviceWorkers: 'block' });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  if (files) await routeModel(page, files);
  await page.goto(server.url + hash);
  await page.waitForFunction(() => window.attnscope && window.attnscope.state().phase !== 'loading', null,
    { timeout: 180_000 });
  return { page, errors, context };
}

async function settle(page, want) {
  await page.waitForFunction((want) => {
    const s = window.attnscope.state();
    return Object.entries(want).every(([k, v]) => s[k] === v) && s.renders > 0;
  }, want, { timeout: 90_000 });
  return page.evaluate(() => window.attnscope.snapshot());
}

/** The positional panel's tables against `attnscope positions` of the same model. */
async function checkRopeNumbers(page, want) {
  assert.equal(want.kind, 'rope');
  await page.locator('.positions-panel details summary').click();
  const freq = await page.locator('[data-testid=positions-freq] tbody tr').evaluateAll((rows) =>
    rows.map((r) => [...r.querySelectorAll('td')].map((td) => Number(td.textContent))));
  assert.equal(freq.length, want.inv_freq.length, 'one row per dimension pair');
  freq.forEach(([i, f, w]) => {
    assert.ok(Math.abs(f - want.inv_freq[i]) <= 1e-4 * Math.max(1, Math.abs(want.inv_freq[i])), `θ${i}: ${f} vs ${want.inv_freq[i]}`);
    assert.ok(Math.abs(w - want.wavelength[i]) <= 1e-4 * Math.max(1, want.wavelength[i]), `wavelength ${i}: ${w} vs ${want.wavelength[i]}`);
  });
  const decay = await page.locator('[data-testid=positions-decay-table] tbody tr').evaluateAll((rows) =>
    rows.map((r) => [...r.querySelectorAll('td')].map((td) => Number(td.textContent))));
  assert.deepEqual(decay.map((r) => r[0]), want.distances, 'the same distances');
  decay.forEach(([m, v], k) => assert.ok(Math.abs(v - want.decay[k]) <= 1e-4, `decay at ${m}: ${v} vs ${want.decay[k]}`));
  assert.equal(decay[0][1], 1, 'q·R(0)q ÷ q·q = 1');
}

async function walk(webgpu) {
  const browser = await launch({ webgpu });
  try {
    const { page, errors } = await openWith(browser, tiny);
    const s0 = await page.evaluate(() => window.attnscope.state());
    assert.equal(s0.phase, 'ready', JSON.stringify(s0));
    assert.equal(s0.gpu, webgpu, 'the backend asked for');
    await typeText(page, TEXT);
    const reference = trace(tinyDir, TEXT);
    const t = reference.tokens.length;
    await settle(page, { text: TEXT, gpuTokens: t });

    // Layer 1, head 3: the second query head on KV head 1.
    await page.locator('.layer-button').nth(1).click();
    await page.locator('.head-button').nth(3).click();
    let worst = 0;
    for (const stage of STAGES) {
      await page.locator(`[data-stage=${stage}]`).click();
      const snap = await settle(page, { stage, layer: 1, head: 3 });
      const diff = maxAbsDiff(snap.matrix, stageMatrix(reference, 1, 3, stage), `L1 H3 ${stage}`);
      assert.ok(diff <= 1e-4, `L1 H3 ${stage}: ${diff}`);
      worst = Math.max(worst, diff);
      if (stage === 'k' || stage === 'v' || stage === 'k_pre') {
        assert.match(await page.locator('.attention-panel').innerText(), /shared by query heads 2–3/,
          `the ${stage} stage names the heads sharing KV head 1`);
      }
    }
    console.log(`${webgpu ? 'WebGPU' : 'CPU'}: largest |page − CPU trace| over L1 H3's stages: ${worst.toExponential(2)}`);
    // RoPE really turned something: Q before and after differ past position 0.
    const pre = stageMatrix(reference, 1, 3, 'q_pre'), post = stageMatrix(reference, 1, 3, 'q');
    assert.ok(maxAbsDiff(pre.slice(0, 1), post.slice(0, 1), 'position 0') <= 1e-6, 'position 0 is not rotated');
    assert.ok(Math.abs(pre[t - 1][0] - post[t - 1][0]) > 1e-6 || Math.abs(pre[t - 1][1] - post[t - 1][1]) > 1e-6);

    // The positional panel: this model's own RoPE numbers (Llama 3 scaling included) against the CLI's.
    await page.locator('.nav-link', { hasText: 'Positions' }).click();
    await checkRopeNumbers(page, cli(['positions', '--model', tinyDir]));

    // Every panel, the way a learner opens them; the block view speaks of RMSNorm.
    for (const link of await page.locator('.nav-link').all()) {
      await link.click();
      await page.waitForTimeout(150);
    }
    await openEveryPanel(page);
    const block = await page.locator('.block-panel').innerText();
    assert.match(block, /RMSNorm/, 'the block view names RMSNorm');
    assert.doesNotMatch(block, /LayerNorm|mean 0, variance 1/, 'no LayerNorm words on a Llama');
    assert.match(await page.locator('.cost-panel').innerText(), /grouped/i, 'the cost panel shows the grouped-KV saving');
    // Presenter mode on a Llama: every slide by keyboard, then back.
    await page.locator('.present-button').click();
    await page.waitForFunction(() => window.attnscope.state().present === 0);
    let slides = 0;
    for (let last = -1; ; slides++) {
      const at = (await page.evaluate(() => window.attnscope.state())).present;
      if (at === last) break;
      last = at;
      await page.keyboard.press('ArrowRight');
      await page.waitForTimeout(50);
    }
    assert.ok(slides >= 2 + 8 * 2 + 1 + 2, `${slides} slides`);
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => window.attnscope.state().present === null);
    await screenshot(page, `models-llama-${webgpu ? 'gpu' : 'cpu'}.png`);
    const violations = serious(await audit(page));
    assert.deepEqual(violations.map((v) => v.id), [], `axe-core on a Llama:\n${describe(violations)}`);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
}

test('a grouped-head Llama: every panel on WebGPU, stages against the CLI', { timeout: 600_000 }, () => walk(true));
test('a grouped-head Llama: every panel on the CPU fallback, stages against the CLI', { timeout: 600_000 }, () => walk(false));

test('the model grid of SmolLM2\'s shape: 30 × 9 heads in 3 KV groups, drawn and chosen by keyboard', { timeout: 600_000 }, async () => {
  const files = randomLlama(SMOLLM2_GRID, { seed: 3 });
  const browser = await launch({ webgpu: true });
  try {
    for (const [viewport, name] of [[{ width: 1280, height: 900 }, 'desktop'], [{ width: 390, height: 844 }, 'phone']]) {
      const { page, errors, context } = await openWith(browser, files, '#text=Mr%20Darcy%20walked%20in.', viewport);
      await page.waitForFunction(() => window.attnscope.state().runs > 0, null, { timeout: 180_000 });
      const grid = page.locator('canvas.grid-canvas:not(.off)');
      await grid.scrollIntoViewIfNeeded();
      await page.waitForFunction(() => document.querySelector('canvas.grid-canvas:not(.off)').width !== 300, null, { timeout: 60_000 });
      await page.waitForTimeout(500);
      const stats = await canvasStats(page, 'canvas.grid-canvas:not(.off)');
      assert.ok(stats.stdLuminance > 10 && stats.distinctColours > 20, `the grid is drawn: ${JSON.stringify(stats)}`);
      const box = await grid.boundingBox();
      assert.ok(box.width <= viewport.width, `${name}: the grid fits the width (${box.width})`);
      const panel = await page.locator('.model-panel').innerText();
      assert.match(panel, /3 KV heads/, 'the grouping is named');
      assert.match(panel, /L29/, 'the last layer is labelled');
      // The keyboard: End goes to the last head, ArrowDown down the layers.
      await grid.focus();
      await page.keyboard.press('End');
      for (let i = 0; i < 29; i++) await page.keyboard.press('ArrowDown');
      await page.waitForFunction(() => { const s = window.attnscope.state(); return s.layer === 29 && s.head === 8; });
      await grid.click({ position: { x: 4, y: 4 } });
      await page.waitForFunction(() => { const s = window.attnscope.state(); return s.layer === 0 && s.head === 0; });
      await screenshot(page, `grid-30x9-${name}.png`);
      assert.deepEqual(errors, []);
      await context.close();
    }
  } finally {
    await browser.close();
  }
});

test('the positional panel: GPT-2\'s learned positions against the CLI, RoPE of SmolLM2\'s shape drawn on desktop and phone', { timeout: 600_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    // The default model (learned positions): the similarity map, read by keyboard, against the CLI.
    const want = cli(['positions']);
    assert.equal(want.kind, 'learned');
    const { page, errors, context } = await openWith(browser, null);
    await page.locator('.nav-link', { hasText: 'Positions' }).click();
    const map = page.locator('[data-testid=positions-map]');
    await map.scrollIntoViewIfNeeded();
    await page.waitForTimeout(300);
    const stats = await canvasStats(page, '[data-testid=positions-map]');
    assert.ok(stats.stdLuminance > 10 && stats.distinctColours > 20, `the map is drawn: ${JSON.stringify(stats)}`);
    await map.focus();
    // The first key focuses (0, 0) and moves from there.
    const keys = ['ArrowRight', 'ArrowRight', 'ArrowRight', 'ArrowDown', 'ArrowDown', 'ArrowDown', 'ArrowDown', 'ArrowDown'];
    for (const k of keys) await page.keyboard.press(k);
    const text = await page.locator('[data-testid=positions-readout]').innerText();
    const m = text.match(/positions (\d+) and (\d+): cosine similarity (-?[\d.]+)/);
    assert.ok(m, text);
    const [i, j, v] = [Number(m[1]), Number(m[2]), Number(m[3])];
    assert.deepEqual([i, j], [5, 3]);
    assert.ok(Math.abs(v - want.similarity[i][j]) <= 1e-4, `similarity ${i},${j}: ${v} vs ${want.similarity[i][j]}`);
    assert.equal(want.similarity.length, Math.min(128, MODEL_CONFIG.n_positions), 'the first 128 positions (or all)');
    await screenshot(page, 'positions-learned-desktop.png');
    assert.deepEqual(errors, []);
    await context.close();

    // RoPE with SmolLM2's shape (head_dim 16 here, θ 10000): both charts drawn, desktop and phone.
    const files = randomLlama(SMOLLM2_GRID, { seed: 3 });
    for (const [viewport, name] of [[{ width: 1280, height: 900 }, 'desktop'], [{ width: 390, height: 844 }, 'phone']]) {
      const { page: p, errors: e, context: c } = await openWith(browser, files, '', viewport);
      await p.locator('.nav-link', { hasText: 'Positions' }).click();
      for (const id of ['positions-wavelength', 'positions-decay']) {
        const paths = await p.locator(`[data-testid=${id}] svg path`).count();
        assert.ok(paths >= 1, `${id} has its line`);
      }
      await p.locator('.positions-panel').screenshot({ path: `${SCREENS}/positions-rope-${name}.png` });
      assert.deepEqual(e, []);
      await c.close();
    }
  } finally {
    await browser.close();
  }
});

test('a 2,000-token text on a 2,048-token Llama renders, zooms and hovers on each backend, both reading the same value', { timeout: 600_000 }, async () => {
  const files = randomLlama(TINY_GQA, { seed: 11, positions: 2048 });
  let text = '';
  // About 2,000 tokens, inside the context: past 1,024 keys the GPU's attention_rows.wgsl works each
  // row in global memory instead of workgroup memory.
  for (let i = 0; text.length < 7650; i++) text += `${TEXT} ${i % 7 ? 'She' : 'He'} said it was ${i}. `;
  // The CLI's whole trace of ~2,000 tokens is a GB of JSON: the two backends are compared
  // with each other instead (the CPU one is the reference compiled to wasm), and each with its own map.
  const seen = [];
  for (const webgpu of [true, false]) {
    const browser = await launch({ webgpu });
    try {
      const { page, errors } = await openWith(browser, files, `#text=${encodeURIComponent(text)}&stage=weights&layer=1&head=2`);
      await page.waitForFunction(() => { const s = window.attnscope.state(); return s.runs > 0 && s.gpuTokens >= 1900 && s.renders > 0; },
        null, { timeout: 180_000 });
      const { gpuTokens: t, inputError } = await page.evaluate(() => window.attnscope.state());
      assert.equal(inputError, null, 'the whole text is read: no limit before the context');
      const canvas = page.locator('canvas.heatmap-canvas:not(.off)');
      await canvas.scrollIntoViewIfNeeded();
      const stats = await canvasStats(page);
      assert.ok(stats.stdLuminance > 5, `the ${t}-token map is drawn: ${JSON.stringify(stats)}`);
      const box = await canvas.boundingBox();
      // A cell is under a CSS pixel here: the pointer names whichever cell it is over, near the bottom left.
      await page.mouse.move(box.x + 1.5, box.y + box.height - 1.5);
      await page.waitForFunction(() => window.attnscope.state().hover, null, { timeout: 60_000 });
      const hover = (await page.evaluate(() => window.attnscope.state())).hover;
      // 1.5 CSS pixels in from the corner: within 2 px worth of cells.
      const [perX, perY] = [t / box.width, t / box.height];
      assert.ok(hover.row >= t - Math.ceil(2 * perY) && hover.col <= Math.ceil(2 * perX),
        `near the bottom left: ${hover.row}, ${hover.col} (${perX.toFixed(2)} cells a pixel)`);
      // The map's ~4 million values stay in the page (window.kept); the test reads the cells it checks.
      const keep = (name) => page.evaluate(async (n) => { window.kept = { ...window.kept, [n]: await window.attnscope.snapshot() }; }, name);
      const cell = (name, r, c) => page.evaluate(([n, r, c]) => window.kept[n].matrix[r][c], [name, r, c]);
      const lastRow = (name) => page.evaluate((n) => window.kept[n].matrix.at(-1), name);
      await keep('whole');
      assert.equal(await page.evaluate(() => window.kept.whole.matrix.length), t);
      assert.ok(Math.abs(hover.value - await cell('whole', hover.row, hover.col)) <= 1e-6, 'the hovered value is the map\'s');
      const row = t - 1;
      const last = await lastRow('whole');
      const sum = last.reduce((a, b) => a + (b ?? 0), 0);
      assert.ok(Math.abs(sum - 1) <= 1e-4, `the last row sums to 1: ${sum}`);
      seen.push({ t, value: hover.value, last });
      // The token strip of ~2,000 tokens: its first and last chips and the rest as one dashed
      // item (2,048 chips took ~125 ms to build and ~100 ms of layout at each change); a row
      // hovered in the middle of the map opens a window of chips on it, between two gaps.
      const chips = page.locator('.tokens .chip:not(.chip-gap)');
      assert.equal(await page.locator('.tokens .chip-gap').count(), 1, 'the strip leaves the middle out');
      assert.equal(await chips.count(), 2 * 64, 'the first and last 64 chips');
      await page.mouse.move(box.x + box.width * 0.25, box.y + box.height * 0.5);
      await page.waitForFunction(() => { const h = window.attnscope.state().hover; return h && h.row > 600 && h.row < 1400; },
        null, { timeout: 60_000 });
      const mid = (await page.evaluate(() => window.attnscope.state())).hover.row;
      await page.locator(`.tokens .chip.highlighted[title^="token ${mid}:"]`).waitFor({ timeout: 10_000 });
      assert.equal(await page.locator('.tokens .chip-gap').count(), 2, 'a gap either side of the window');
      assert.equal(await chips.count(), 2 * 64 + 33, 'and 16 chips either side of the hovered row');

      // Zoom: + from the keyboard (about the centre), the labels come back, a hover reads
      // the cell under the pointer exactly, 0 shows the whole map again.
      await page.mouse.move(box.x + box.width + 40, box.y - 40);
      await page.waitForFunction(() => window.attnscope.state().hover === null || !window.attnscope.state().locked);
      await canvas.focus();
      // Each + halves the span: zoomed to about 31–62 rows, where the labels are readable.
      const presses = Math.ceil(Math.log2(t / 32));
      for (let k = 0; k < presses; k++) await page.keyboard.press('+');
      const shown = await page.locator('[data-testid=zoom-shown]').innerText();
      const z = shown.match(/Rows (\d+)–(\d+), columns (\d+)–(\d+) of (\d+) × (\d+)/);
      assert.ok(z, shown);
      const [r0, r1, c0, c1] = z.slice(1, 5).map(Number);
      assert.equal(Number(z[5]), t);
      const span = t / 2 ** presses;
      assert.ok(Math.abs((r1 - r0 + 1) - span) <= span * 0.25, `about ${t} / ${2 ** presses} rows: ${shown}`);
      assert.equal(await page.locator('.row-labels.hidden').count(), 0, 'zoomed in, the row labels show');
      assert.equal(await page.locator('.row-labels .label').count(), r1 - r0 + 1, 'one label per shown row');
      await page.locator('[data-testid=zoom-overview]').waitFor();
      const zb = await canvas.boundingBox();
      const [lr, lc] = [Math.floor((r1 - r0 + 1) * 0.6), Math.floor((c1 - c0 + 1) * 0.3)];
      await page.mouse.move(zb.x + (lc + 0.5) * zb.width / (c1 - c0 + 1), zb.y + (lr + 0.5) * zb.height / (r1 - r0 + 1));
      await page.waitForFunction(([r, c]) => {
        const h = window.attnscope.state().hover;
        return h && h.row === r && h.col === c;
      }, [r0 + lr, c0 + lc], { timeout: 60_000 });
      const zh = (await page.evaluate(() => window.attnscope.state())).hover;
      const expected = await cell('whole', zh.row, zh.col);
      assert.ok(expected === null ? zh.value === null : Math.abs(zh.value - expected) <= 1e-6,
        `zoomed hover (${zh.row}, ${zh.col}) reads ${zh.value}, the map holds ${expected}`);
      await page.locator('.attention-panel').first().screenshot({ path: `${SCREENS}/long-text-zoomed-${webgpu ? 'gpu' : 'cpu'}.png` });
      await canvas.focus();
      await page.keyboard.press('0');
      assert.match(await page.locator('[data-testid=zoom-shown]').innerText(), /The whole map/);
      console.log(`${webgpu ? 'WebGPU' : 'CPU'}: T = ${t}, hovered ${hover.row}, ${hover.col}: ${hover.value.toFixed(6)}`);
      if (webgpu) {
        // The same text with one block's matrices at a time (a GPU memory that holds one
        // block's [4 × T × T] three, not both blocks'): the run takes flash attention over
        // ~2,000 keys, and the map's block is computed when read. Its last row is the same.
        const heads = TINY_GQA.heads;
        await page.evaluate((b) => window.attnscope.setLimits({ gpuMemory: b }), 3 * heads * t * t * 4 + 4096);
        await page.locator('#text-input').fill(`${text}x`);
        await page.locator('#text-input').fill(text);
        await page.waitForFunction((n) => { const s = window.attnscope.state(); return s.oneBlock && s.gpuTokens === n && s.renders > 0; },
          t, { timeout: 180_000 });
        await keep('oneBlock');
        const one = await lastRow('oneBlock');
        const drift = Math.max(...one.map((v, j) => Math.abs(v - last[j])));
        assert.ok(drift <= 1e-4, `one block's at a time, the last row is the same within 1e-4: ${drift}`);
        seen.push({ t, oneBlock: true, last: one });
        await page.evaluate(() => window.attnscope.setLimits(null));
      } else {
        // The same text with WebAssembly memory for four of its traces without the T×T weights
        // but not with them: each weight is computed when read from Q, K and its row's softmax
        // max and sum. The map, a hovered cell and the grid's pixels are the very same.
        const grid = async () => {
          const c = page.locator('canvas.grid-canvas:not(.off)');
          await c.scrollIntoViewIfNeeded();
          await page.waitForTimeout(300);
          return canvasHash(page, 'canvas.grid-canvas:not(.off)');
        };
        const keptGrid = await grid();
        const s = await page.evaluate(() => window.attnscope.state());
        assert.equal(s.cpuWeightsKept, true);
        // A budget of the weights' bytes less one: the rest of a trace takes far less.
        const heads = TINY_GQA.heads * TINY_GQA.layers;
        await page.evaluate(([budget, weights]) => window.attnscope.setLimits({ wasmMemory: 4 * 2 ** 30 - 4 * (budget - weights) }),
          [s.cpuTraceBudget, heads * t * t * 4 - 1]);
        await page.locator('#text-input').fill(`${text}x`);
        await page.locator('#text-input').fill(text);
        await page.waitForFunction((n) => { const s = window.attnscope.state(); return s.cpuWeightsKept === false && s.gpuTokens === n && s.renders > 0; },
          t, { timeout: 180_000 });
        await keep('computed');
        const computed = await lastRow('computed');
        assert.deepEqual(computed, last, 'weights computed when read: the last row, bit for bit');
        assert.equal(await cell('computed', hover.row, hover.col), hover.value, 'and the hovered cell');
        const computedGrid = await grid();
        console.log(`CPU grid at T = ${t}, weights kept ${JSON.stringify(keptGrid)}, computed when read ${JSON.stringify(computedGrid)}`);
        assert.deepEqual(computedGrid, keptGrid, 'the grid: the very same pixels');
        await page.evaluate(() => window.attnscope.setLimits(null));
      }
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  }
  const cpu = seen.at(-1);
  for (const gpu of seen.slice(0, -1)) {
    assert.equal(gpu.t, cpu.t, 'the same tokens');
    const worst = Math.max(...gpu.last.map((v, j) => Math.abs(v - cpu.last[j])));
    assert.ok(worst <= 1e-4, `WebGPU${gpu.oneBlock ? ' (one block\'s at a time)' : ''} and CPU agree on the last row within 1e-4: ${worst}`);
  }
});
