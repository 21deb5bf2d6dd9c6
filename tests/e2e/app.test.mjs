// The walking skeleton, end to end in headless Chromium: type, watch the GPU
// heatmap, and check the page's numbers against the CLI's CPU reference.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serveDist, launch, openApp, typeText, cliTrace, screenshot, canvasStats, canvasHash, maxAbsDiff, MODEL_CONFIG } from './harness.mjs';

const SENTENCE = 'The cat sat on the mat, and then the cat slept.';
let server;

before(async () => { server = await serveDist(); });
after(async () => { await server.close(); });

function assertClose(actual, expected, tol, what) {
  assert.equal(actual.length, expected.length, `${what}: row count`);
  actual.forEach((row, i) => {
    assert.equal(row.length, expected[i].length, `${what}: row ${i} length`);
    row.forEach((v, j) => {
      const e = expected[i][j];
      assert.ok(Math.abs(v - e) <= tol, `${what}[${i}][${j}] = ${v}, CPU reference ${e}`);
    });
  });
}

test('typing shows GPU attention weights equal to the CPU reference', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, server.url);
    const first = await page.evaluate(() => window.attnscope.state());
    assert.equal(first.phase, 'ready');
    assert.equal(first.gpu, true, `WebGPU should work with the SwiftShader flags: ${first.gpuError}`);
    assert.match(await page.locator('.badge').first().innerText(), /default · \d+ layers/);

    await typeText(page, SENTENCE);
    const reference = cliTrace(SENTENCE);
    const t = reference.tokens.length;
    await page.waitForFunction(([text, t]) => {
      const s = window.attnscope.state();
      return s.text === text && s.gpuTokens === t && s.renders > 0;
    }, [SENTENCE, t], { timeout: 60_000 });

    const state = await page.evaluate(() => window.attnscope.state());
    assert.deepEqual(state.tokens.map((x) => x.id), reference.tokens.map((x) => x.id), 'token ids');
    // Runs are coalesced to one per frame with the newest text (never queued behind stale ones).
    assert.ok(state.runs >= 1 && state.runs <= SENTENCE.length + 1, `at most one GPU run per keystroke (runs: ${state.runs})`);

    const heads = reference.layers[0].heads.length;
    for (let h = 0; h < heads; h++) {
      await page.locator('.head-button').nth(h).click();
      const snap = await page.evaluate(() => window.attnscope.snapshot());
      assert.equal(snap.head, h);
      assertClose(snap.weights, reference.layers[0].heads[h].weights, 1e-4, `head ${h} weights`);
      snap.weights.forEach((row, i) => {
        const sum = row.reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(sum - 1) < 1e-4, `head ${h} row ${i} sums to ${sum}`);
        row.forEach((v, j) => { if (j > i) assert.equal(v, 0, `head ${h} [${i}][${j}] above the diagonal`); });
      });
    }

    // Hover reads back exactly one value (4 bytes) and shows it.
    await page.locator('.head-button').nth(1).click();
    await page.locator('canvas.heatmap-canvas:not(.off)').scrollIntoViewIfNeeded();
    await page.waitForTimeout(300);
    const before = (await page.evaluate(() => window.attnscope.state())).bytesReadBack;
    const box = await page.locator('canvas.heatmap-canvas:not(.off)').boundingBox();
    const [row, col] = [t - 1, 2];
    await page.mouse.move(box.x + (col + 0.5) * box.width / t, box.y + (row + 0.5) * box.height / t);
    await page.waitForFunction(([r, c]) => {
      const hv = window.attnscope.state().hover;
      return hv && hv.row === r && hv.col === c && hv.head === 1;
    }, [row, col], { timeout: 30_000 });
    const hovered = await page.evaluate(() => window.attnscope.state());
    assert.equal(hovered.bytesReadBack - before, 4, 'a hover reads back one f32');
    const expected = reference.layers[0].heads[1].weights[row][col];
    assert.ok(Math.abs(hovered.hover.value - expected) < 1e-4, `hover ${hovered.hover.value} vs ${expected}`);
    const readout = await page.locator('[data-testid=readout]').innerText();
    const shown = Number(/= (-?[\d.]+)/.exec(readout)?.[1]);
    assert.ok(Math.abs(shown - expected) < 1e-4, `the readout shows the value: ${readout}`);

    const stats = await canvasStats(page);
    console.log('desktop canvas pixel statistics', JSON.stringify(stats));
    assert.ok(stats.opaqueFraction > 0.99, 'the canvas is drawn');
    assert.ok(stats.stdLuminance > 10, 'the heatmap has contrast');
    assert.ok(stats.distinctColours > 20, 'the heatmap has many colours');
    await screenshot(page, 'desktop.png');

    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    await page.evaluate(() => window.dispatchEvent(new Event('resize')));
    await page.waitForTimeout(300);
    await screenshot(page, 'phone.png');
    const phone = await canvasStats(page);
    console.log('phone canvas pixel statistics', JSON.stringify(phone));
    assert.ok(phone.stdLuminance > 10, 'the phone heatmap has contrast');
    assert.deepEqual(errors, [], 'no page errors');
  } finally {
    await browser.close();
  }
});

/**
 * Opens the app on `webgpu` or the CPU, types a text of 60 words (whole on the default model),
 * lowers a limit through the test hook (`limits`), adds a word and hands the state with its
 * message to `check`; then puts the limits back and expects the whole text again, with no message.
 */
async function pastTheTokenLimit(webgpu, limits, check) {
  const browser = await launch({ webgpu });
  try {
    const { page, errors } = await openApp(browser, `${server.url}${webgpu ? '' : '?backend=cpu'}`);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    const text = 'word '.repeat(60);
    await page.locator('#text-input').fill(text);
    await page.waitForFunction(() => window.attnscope.state().tokens.length > 50, null, { timeout: 30_000 });
    const state = () => page.evaluate(() => window.attnscope.state());
    const all = (await state()).tokens.length;
    assert.equal((await state()).inputError, null, 'the default model keeps its whole context');
    await page.evaluate((l) => window.attnscope.setLimits(l), limits);
    await page.locator('#text-input').fill(`${text}more`);
    await page.waitForFunction(() => window.attnscope.state().inputError !== null, null, { timeout: 30_000 });
    await check(page, await state(), all);
    // The limits back: the whole text again, and no message.
    await page.evaluate(() => window.attnscope.setLimits(null));
    await page.locator('#text-input').fill(text);
    await page.waitForFunction((n) => window.attnscope.state().tokens.length === n && window.attnscope.state().inputError === null, all, { timeout: 30_000 });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
}

test('on the CPU, text past what the page can keep every stage of: a clear message and the first tokens it can keep, never an abort', { timeout: 300_000 }, async () => {
  // WebAssembly memory lowered to the margin, the weights (1.9 MB, 16-bit) and four traces of about
  // 19 tokens (7.2 kB a token, and the last position's 16 kB of logits).
  await pastTheTokenLimit(false, { wasmMemory: 256 * 2 ** 20 + 2_500_000 }, async (page, s, all) => {
    const m = /On the CPU the page keeps every per-token stage of every head of a run in memory \(the T×T maps are computed when shown\), and for this model that fits for at most (\d+) tokens \(.+ each run\): it runs the first \1\./.exec(s.inputError);
    assert.ok(m, s.inputError);
    const kept = Number(m[1]);
    assert.ok(kept > 0 && kept < all, `${kept} of ${all} tokens`);
    assert.equal(s.tokens.length, kept, 'the tokens the page runs');
    assert.match(await page.locator('[data-testid=token-count]').innerText(), new RegExp(`^${kept} of \\d+ tokens`));
  });
});

/**
 * Waits for the address to hold `text` with a layer, head and stage: it follows the page once the
 * page has been still for 200 ms, and a layer, head or stage replaced in it before then changes
 * nothing (the wait for that view times out).
 */
async function linked(page, text) {
  await page.waitForFunction((t) => {
    const m = location.hash.match(/[#&]text=([^&]*)/);
    return m && decodeURIComponent(m[1]) === t && /layer=\d+/.test(location.hash) && /head=\d+/.test(location.hash)
      && /stage=\w+/.test(location.hash);
  }, text, { timeout: 30_000 });
}

/** Shows the weights stage and scrolls to the model grid once drawn at its size; returns its selector. */
async function showGrid(page) {
  const selector = 'canvas.grid-canvas:not(.off)';
  await page.locator('[data-stage=weights]').click();
  await page.locator(selector).scrollIntoViewIfNeeded();
  await page.waitForFunction((sel) => document.querySelector(sel).width !== 300, selector, { timeout: 30_000 });
  await page.waitForTimeout(300);
  return selector;
}

/** Each layer's raw scores and weights of head 1 as the page shows them (`all` tokens each), through the address. */
async function headOneStages(page, all) {
  const out = [];
  for (let layer = 0; layer < MODEL_CONFIG.n_layer; layer++) {
    for (const stage of ['raw', 'weights']) {
      await page.evaluate(([l, st]) => {
        location.hash = location.hash.replace(/layer=\d+/, `layer=${l}`).replace(/head=\d+/, 'head=1').replace(/stage=\w+/, `stage=${st}`);
      }, [layer, stage]);
      await page.waitForFunction(([l, st]) => window.attnscope.state().layer === l && window.attnscope.state().stage === st, [layer, stage]);
      const snap = await page.evaluate(() => window.attnscope.snapshot());
      assert.equal(snap.matrix.length, all, `layer ${layer} ${stage}: every token`);
      out.push({ layer, stage, matrix: snap.matrix });
    }
  }
  return out;
}

/** Bytes of a CPU trace of `t` tokens of the default model (GPT-2 family), as `engine::trace_bytes` counts them
 * for the page's runs (each layer's attention and MLP outputs, its other stages computed when read; the last
 * position's logits alone). */
function cpuTraceBytes(t, keptWeights) {
  const { n_layer: layers, n_head: heads, n_embd: d, vocab_size: vocab } = MODEL_CONFIG;
  const dHead = d / heads;
  const perHead = (keptWeights ? t * t : 0) + 2 * t + 2 * t * dHead;
  const perKvHead = 2 * t * dHead;
  return 4 * (layers * heads * (perHead + perKvHead) + layers * t * 2 * d + 2 * t * d + vocab);
}

test('on the CPU, a text whose every head\'s T×T weights outgrow the page\'s memory: computed when read, the same numbers, every map drawn', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: false });
  try {
    const { page, errors } = await openApp(browser, `${server.url}?backend=cpu`);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    const text = 'the cat sat on the mat and the dog sat on the cat. '.repeat(7);
    await page.locator('#text-input').fill(text);
    // (The run shown is this text's: on a busy machine the last text's may still be on screen.)
    await page.waitForFunction(() => { const s = window.attnscope.state(); return s.tokens.length > 100 && s.gpuTokens === s.tokens.length; },
      null, { timeout: 30_000 });
    await linked(page, text);
    const start = await page.evaluate(() => window.attnscope.state());
    assert.equal(start.cpuWeightsKept, true, 'every head\'s weights kept');
    assert.equal(start.inputError, null, 'the whole text');
    const all = start.tokens.length;
    // Each layer's weights and raw scores of one head, and a hovered weight.
    const read = async () => {
      const out = await headOneStages(page, all);
      const canvas = page.locator('canvas.heatmap-canvas:not(.off)');
      await canvas.scrollIntoViewIfNeeded();
      const box = await canvas.boundingBox();
      const [row, col] = [all - 1, 3];
      await page.mouse.move(box.x + (col + 0.5) * box.width / all, box.y + (row + 0.5) * box.height / all);
      await page.waitForFunction(([r, c]) => {
        const hv = window.attnscope.state().hover;
        return hv && hv.row === r && hv.col === c && hv.stage === 'weights';
      }, [row, col], { timeout: 30_000 });
      out.push({ hover: (await page.evaluate(() => window.attnscope.state())).hover.value });
      await page.mouse.move(0, 0);
      return out;
    };
    // The model view's grid of every head's weights: its pixels.
    const gridPixels = async () => canvasHash(page, await showGrid(page));
    const kept = await read();
    const keptGrid = await gridPixels();
    // WebAssembly memory lowered so that each of the page's traces may take halfway between this
    // text's trace without the T×T weights and with them (`engine::trace_bytes`).
    const between = Math.round((cpuTraceBytes(all, false) + cpuTraceBytes(all, true)) / 2);
    assert.ok(start.cpuTraceBudget > cpuTraceBytes(all, true), 'by default, the weights fit');
    const memory = 4 * 2 ** 30 - 4 * (start.cpuTraceBudget - between);
    await page.evaluate((m) => window.attnscope.setLimits({ wasmMemory: m }), memory);
    assert.equal((await page.evaluate(() => window.attnscope.state())).cpuTraceBudget, between);
    await page.locator('#text-input').fill(`${text}x`);
    await page.locator('#text-input').fill(text);
    await page.waitForFunction((n) => window.attnscope.state().tokens.length === n && window.attnscope.state().cpuWeightsKept === false, all, { timeout: 30_000 });
    // The address carries this text before the reads rewrite it: rewritten while it still held the
    // text with the `x`, it would bring that text back (a CI run read its 114 rows).
    await linked(page, text);
    const s = await page.evaluate(() => window.attnscope.state());
    assert.equal(s.inputError, null, 'the whole text, with no message');
    const computed = await read();
    for (const [i, want] of kept.entries()) {
      // Computed from Q, K and each row's softmax max and sum, bit for bit the kernel's.
      assert.deepEqual(computed[i], want, `${want.stage ?? 'hover'} ${want.layer ?? ''}: the same numbers`);
    }
    const computedGrid = await gridPixels();
    console.log(`the grid with every head's weights kept ${JSON.stringify(keptGrid)}, computed when read ${JSON.stringify(computedGrid)}`);
    assert.deepEqual(computedGrid, keptGrid, 'the grid: the very same pixels');
    await screenshot(page, 'cpu-weights-computed.png');
    await page.evaluate(() => window.attnscope.setLimits(null));
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('on the GPU, text past what its T×T matrices may take: a clear message and the first tokens that fit', { timeout: 300_000 }, async () => {
  // The largest storage binding lowered: a layer's [heads × T × T] f32 matrices within
  // 14,400 bytes hold 30 tokens of the default model's 4 heads.
  await pastTheTokenLimit(true, { maxBinding: MODEL_CONFIG.n_head * 30 * 30 * 4 }, async (page, s) => {
    assert.match(s.backend, /^WebGPU/, 'on the GPU');
    const m = /On the GPU the page keeps a run's T×T matrices \(raw scores, masked scores, weights\), for a long text one block's at a time, and for this model one block's fit at most (\d+) tokens \(.+ for the three, at most .+ in all and .+ a buffer on this GPU\): it runs the first \1\./.exec(s.inputError);
    assert.ok(m, s.inputError);
    assert.equal(Number(m[1]), 30);
    assert.equal(s.tokens.length, 30, 'the tokens the page runs');
    const snap = await page.evaluate(() => window.attnscope.snapshot());
    assert.equal(snap.matrix.length, 30, 'the map shows those tokens');
  });
});

test('on the GPU, a text whose every block\'s T×T matrices outgrow the GPU memory: one block\'s at a time, the same numbers, every map drawn', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, server.url);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    const text = 'the cat sat on the mat and the dog sat on the cat. '.repeat(4);
    await page.locator('#text-input').fill(text);
    // (The run shown is this text's: on a busy machine the last text's may still be on screen.)
    await page.waitForFunction(() => { const s = window.attnscope.state(); return s.tokens.length > 40 && s.gpuTokens === s.tokens.length; },
      null, { timeout: 30_000 });
    await linked(page, text);
    const start = await page.evaluate(() => window.attnscope.state());
    assert.equal(start.oneBlock, false, 'every block\'s matrices kept');
    const all = start.tokens.length;
    // Each block's raw scores and weights of one head, read back from the buffers the maps draw.
    const read = () => headOneStages(page, all);
    // The model view's grid of every block's weights.
    const gridStats = async () => canvasStats(page, await showGrid(page));
    const every = await read();
    const everyGrid = await gridStats();
    // A GPU memory that holds one block's three [4 × 80 × 80] matrices but not both blocks'.
    const budget = 3 * MODEL_CONFIG.n_head * 80 * 80 * 4;
    const whole = 3 * MODEL_CONFIG.n_layer * MODEL_CONFIG.n_head * all * all * 4;
    assert.ok(all <= 80 && whole > budget, `${all} tokens: one block's fit, every block's (${whole} bytes) do not`);
    await page.evaluate((b) => window.attnscope.setLimits({ gpuMemory: b }), budget);
    await page.locator('#text-input').fill(`${text}x`);
    await page.locator('#text-input').fill(text);
    // (The state before the edit already shows this many tokens: wait for the run under the new limit.)
    await page.waitForFunction((n) => { const s = window.attnscope.state(); return s.gpuTokens === n && s.oneBlock === true; },
      all, { timeout: 30_000 });
    await linked(page, text); // (as on the CPU: the reads rewrite the address)
    const s = await page.evaluate(() => window.attnscope.state());
    assert.equal(s.inputError, null, 'the whole text, with no message');
    assert.equal(s.oneBlock, true, 'one block\'s matrices at a time');
    const one = await read();
    for (const [i, want] of every.entries()) {
      const what = `layer ${want.layer} ${want.stage}, one block's at a time`;
      const diff = maxAbsDiff(one[i].matrix, want.matrix, what);
      assert.ok(diff <= 1e-4, `${what}: ${diff}`);
    }
    // The grid draws every block's maps, each block's computed in turn: the same picture.
    const oneGrid = await gridStats();
    console.log(`the grid with every block's matrices ${JSON.stringify(everyGrid)}, one block's at a time ${JSON.stringify(oneGrid)}`);
    assert.ok(oneGrid.stdLuminance > 10 && oneGrid.distinctColours > 20, 'the grid is drawn');
    assert.ok(Math.abs(oneGrid.meanLuminance - everyGrid.meanLuminance) < 0.5, 'every block drawn, as with every block\'s kept');
    await screenshot(page, 'one-block-at-a-time.png');
    await page.evaluate(() => window.attnscope.setLimits(null));
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('text past the context limit: a clear message, and the model\'s first tokens shown as it reads them', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, server.url);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    const limit = MODEL_CONFIG.n_positions;
    await page.locator('#text-input').fill('word '.repeat(400));
    await page.waitForFunction(() => window.attnscope.state().inputError !== null, null, { timeout: 30_000 });
    await page.waitForFunction((n) => window.attnscope.state().gpuTokens === n, limit, { timeout: 60_000 });
    const state = await page.evaluate(() => window.attnscope.state());
    assert.match(state.inputError, new RegExp(`is \\d+ tokens long, but this model's context holds at most ${limit}: it reads the first ${limit}`));
    assert.equal(state.tokens.length, limit, 'the tokens the model reads');
    assert.match(await page.locator('.input-error').innerText(), /Shorten the text to see the rest/);
    assert.match(await page.locator('[data-testid=token-count]').innerText(), new RegExp(`^${limit} of \\d+ tokens · context holds ${limit}$`));
    // Back under the limit, the message goes.
    await page.locator('#text-input').fill('The cat sat on the mat');
    await page.waitForFunction(() => window.attnscope.state().inputError === null, null, { timeout: 30_000 });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
