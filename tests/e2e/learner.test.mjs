// The learner's page (issue 6): every attention stage, every layer and head,
// every mask, the next-token distribution and the CPU fallback, each compared
// with the CLI's CPU reference for the same text.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  serveDist, launch, openApp, typeText, cliTrace, screenshot, canvasStats, traceMatrix, maxAbsDiff, softmax,
} from './harness.mjs';

const SENTENCE = 'Mr Darcy walked into the room, and Elizabeth looked at him.';
const STAGES = ['q', 'k', 'v', 'raw', 'scaled', 'masked', 'weights', 'out'];
let server;

before(async () => { server = await serveDist(); });
after(async () => { await server.close(); });

/** Waits until the page shows `text` with `t` tokens, then returns a snapshot once the view settles. */
async function settle(page, want) {
  await page.waitForFunction((want) => {
    const s = window.attnscope.state();
    return Object.entries(want).every(([k, v]) => s[k] === v) && s.renders > 0;
  }, want, { timeout: 60_000 });
  return page.evaluate(() => window.attnscope.snapshot());
}

/** Sets a range input as a user dragging it would (an input event). */
async function setRange(page, selector, value) {
  await page.locator(selector).evaluate((el, v) => {
    el.value = String(v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, value);
}

async function checkStages(page, reference, layer, head, mask, what) {
  let worst = 0;
  for (const stage of STAGES) {
    await page.locator(`[data-stage=${stage}]`).click();
    const snap = await settle(page, { stage, layer, head, mask });
    const diff = maxAbsDiff(snap.matrix, traceMatrix(reference, layer, head, stage), `${what} ${stage}`);
    assert.ok(diff <= 1e-4, `${what} ${stage}: max |page − CPU| = ${diff}`);
    worst = Math.max(worst, diff);
  }
  return worst;
}

test('every stage, layer, head and mask equals the CPU reference', { timeout: 600_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, server.url);
    assert.equal((await page.evaluate(() => window.attnscope.state())).gpu, true, 'WebGPU backend');
    await typeText(page, SENTENCE);
    const reference = cliTrace(SENTENCE);
    const t = reference.tokens.length;
    await settle(page, { text: SENTENCE, gpuTokens: t });

    let worst = 0;
    // Every stage of layer 0 head 0, then the last layer's last head.
    worst = Math.max(worst, await checkStages(page, reference, 0, 0, 'causal', 'L0 H0'));
    const layers = reference.layers.length, heads = reference.layers[0].heads.length;
    await page.locator('.layer-button').nth(layers - 1).click();
    await page.locator('.head-button').nth(heads - 1).click();
    worst = Math.max(worst, await checkStages(page, reference, layers - 1, heads - 1, 'causal', 'last layer, last head'));

    // Weights of every layer × head, selected through the model view's grid.
    await page.locator('[data-stage=weights]').click();
    const grid = page.locator('canvas.grid-canvas:not(.off)');
    await grid.scrollIntoViewIfNeeded();
    // Drawn once on screen (panels scrolled away wait): its canvas takes its size then.
    await page.waitForFunction(() => document.querySelector('canvas.grid-canvas:not(.off)').width !== 300, null, { timeout: 30_000 });
    await page.waitForTimeout(300);
    const gstats = await canvasStats(page, 'canvas.grid-canvas:not(.off)');
    assert.ok(gstats.stdLuminance > 10 && gstats.distinctColours > 20, `the model view is drawn: ${JSON.stringify(gstats)}`);
    const box = await grid.boundingBox();
    const side = Math.min(box.width / heads, box.height / layers);
    for (const [l, h] of [[1, 2], [layers - 1, 0]]) {
      await page.mouse.click(box.x + (h + 0.5) * side, box.y + (l + 0.5) * side);
      const snap = await settle(page, { layer: l, head: h, stage: 'weights' });
      const diff = maxAbsDiff(snap.matrix, traceMatrix(reference, l, h, 'weights'), `grid L${l} H${h}`);
      assert.ok(diff <= 1e-4, `grid L${l} H${h}: ${diff}`);
    }

    // Masks: bidirectional, then a sliding window of 3; scores and weights recomputed live.
    for (const [button, want] of [['bidirectional', 'bidirectional'], ['window', 'window:3']]) {
      await page.locator(`[data-mask=${button}]`).click();
      if (button === 'window') await setRange(page, '.window-slider', 3);
      const ref = cliTrace(SENTENCE, want);
      for (const stage of ['masked', 'weights']) {
        await page.locator(`[data-stage=${stage}]`).click();
        const s = await page.evaluate(() => window.attnscope.state());
        const snap = await settle(page, { mask: want, stage });
        const diff = maxAbsDiff(snap.matrix, traceMatrix(ref, s.layer, s.head, stage), `${want} ${stage}`);
        assert.ok(diff <= 1e-4, `${want} ${stage}: ${diff}`);
        worst = Math.max(worst, diff);
      }
      assert.match(await page.locator('.mask-note').innerText(), button === 'window' ? /Sliding window of 3/ : /encoder/);
    }
    console.log(`largest |page − CPU| over every checked stage: ${worst.toExponential(2)}`);
    await page.locator('[data-mask=causal]').click();

    // Hover a score: the tooltip shows the exact (scaled) value; click locks, the button unlocks.
    await page.locator('[data-stage=scaled]').click();
    const s = await settle(page, { stage: 'scaled', mask: 'causal' });
    const canvas = page.locator('canvas.heatmap-canvas:not(.off)');
    await canvas.scrollIntoViewIfNeeded();
    const cb = await canvas.boundingBox();
    const [row, col] = [t - 1, 3];
    await page.mouse.click(cb.x + (col + 0.5) * cb.width / t, cb.y + (row + 0.5) * cb.height / t);
    await page.waitForFunction(([r, c]) => {
      const h = window.attnscope.state().hover;
      return h && h.row === r && h.col === c && h.stage === 'scaled';
    }, [row, col], { timeout: 30_000 });
    const locked = await page.evaluate(() => window.attnscope.state());
    assert.equal(locked.locked, true, 'a click locks the focus');
    const expected = traceMatrix(reference, s.layer, s.head, 'scaled')[row][col];
    assert.ok(Math.abs(locked.hover.value - expected) <= 1e-4, `hover ${locked.hover.value} vs ${expected}`);
    assert.match(await page.locator('[data-testid=readout]').innerText(), /Scaled/);
    await page.mouse.move(cb.x + 2, cb.y + 2);
    await page.waitForTimeout(200);
    assert.equal((await page.evaluate(() => window.attnscope.state())).hover.row, row, 'locked: moving does not refocus');
    await page.locator('button.unlock').click();
    assert.equal((await page.evaluate(() => window.attnscope.state())).locked, false);

    // Keyboard: the stepper moves with the arrow keys.
    await page.locator('[data-stage=raw]').click();
    await settle(page, { stage: 'raw' });
    await page.keyboard.press('ArrowRight');
    await settle(page, { stage: 'scaled' });
    await page.keyboard.press('ArrowLeft');
    await settle(page, { stage: 'raw' });

    // Next token: the top 10 at temperature 1 and 0.5 equal softmax(logits / T) of the CPU.
    for (const temperature of [1, 0.5]) {
      await setRange(page, '#temperature', temperature);
      await page.waitForFunction((tp) => {
        const s = window.attnscope.state();
        return s.temperature === tp && s.next.length === 10;
      }, temperature, { timeout: 30_000 });
      await page.waitForTimeout(300);
      const next = (await page.evaluate(() => window.attnscope.state())).next;
      const probs = softmax(reference.logits[0], temperature);
      const order = probs.map((p, id) => [id, p]).sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, 10);
      assert.deepEqual(next.map((n) => n.id), order.map(([id]) => id), `top 10 ids at temperature ${temperature}`);
      next.forEach((n, i) => assert.ok(Math.abs(n.prob - order[i][1]) < 1e-5, `p(${n.text}) ${n.prob} vs ${order[i][1]}`));
    }

    // Head view: every head of the layer at first, one colour each; a toggle turns one off;
    // hovering a query token keeps only its lines.
    // The head view reads its weights once on screen.
    await page.locator('.head-view-panel').scrollIntoViewIfNeeded();
    const colours = () => page.evaluate(() => new Set([...document.querySelectorAll('.head-view-svg line')]
      .map((l) => l.getAttribute('stroke'))).size);
    await page.waitForFunction((h) => new Set([...document.querySelectorAll('.head-view-svg line')]
      .map((l) => l.getAttribute('stroke'))).size === h, heads, { timeout: 30_000 });
    assert.equal(await page.locator('.view-head[aria-pressed=true]').count(), heads, 'every head is on');
    await page.locator('.view-head').nth(1).click();
    await page.waitForFunction((h) => new Set([...document.querySelectorAll('.head-view-svg line')]
      .map((l) => l.getAttribute('stroke'))).size === h - 1, heads, { timeout: 30_000 });
    assert.equal(await colours(), heads - 1);
    const hv = page.locator('.head-view-svg');
    await hv.scrollIntoViewIfNeeded();
    await page.locator('.hv-label').nth(2 * (t - 1)).hover();
    await page.waitForTimeout(300);
    const lastLines = await page.locator('.head-view-svg line').count();
    assert.ok(lastLines > 0 && lastLines <= (heads - 1) * t, `only the last token's lines (${lastLines})`);
    // The keyboard: focus the drawing, ↑/↓ pick the query token.
    await page.mouse.move(0, 0);
    await hv.focus();
    await page.keyboard.press('Home');
    await page.waitForFunction(() => window.attnscope.state().hover?.row === 0);
    await page.keyboard.press('ArrowDown');
    await page.waitForFunction(() => window.attnscope.state().hover?.row === 1);
    assert.match(await hv.getAttribute('aria-label'), /query token 1/);
    assert.ok(await hv.evaluate((el) => el === document.activeElement), 'the drawing keeps the focus');
    await page.keyboard.press('Escape');

    // Block view: hover the norms map; the value is ‖x‖ of the CPU trace's residual stream.
    const block = page.locator('canvas.block-canvas:not(.off)');
    await block.scrollIntoViewIfNeeded();
    const bb = await block.boundingBox();
    const points = 2 * layers + 1;
    const [point, tok] = [2, 1]; // after layer 0's MLP, token 1
    await page.mouse.move(bb.x + (tok + 0.5) * bb.width / t, bb.y + (point + 0.5) * bb.height * 0.56 / points);
    await page.waitForFunction(() => /after L0 \+ MLP = /.test(document.querySelector('[data-testid=block-readout]')?.innerText ?? ''),
      null, { timeout: 30_000 });
    const text = await page.locator('[data-testid=block-readout]').innerText();
    const shown = Number(/after L0 \+ MLP = (-?[\d.]+)/.exec(text)[1]);
    const norm = Math.hypot(...reference.layers[0].resid_post[tok]);
    assert.ok(Math.abs(shown - norm) <= 1e-3 * Math.max(1, norm), `‖x‖ ${shown} vs CPU ${norm}`);
    assert.match(text, /Most active MLP neurons/);
    const bstats = await canvasStats(page, 'canvas.block-canvas:not(.off)');
    assert.ok(bstats.stdLuminance > 10, `the block view is drawn: ${JSON.stringify(bstats)}`);

    const state = await page.evaluate(() => window.attnscope.state());
    console.log(`input → heatmap latency of the last keystroke: ${state.latencyMs} ms (SwiftShader: CPU emulation)`);
    await page.locator('[data-stage=weights]').click();
    await screenshot(page, 'learner-desktop.png');
    await page.locator('.theme-button').click(); // auto → dark
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, 'rgb(17, 19, 24)', 'the dark theme');
    await screenshot(page, 'learner-dark.png');
    await page.setViewportSize({ width: 360, height: 800 });
    await page.evaluate(() => window.dispatchEvent(new Event('resize')));
    await page.waitForTimeout(400);
    await screenshot(page, 'learner-phone.png');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling at 360 px (overflow ${overflow}px)`);
    assert.deepEqual(errors, [], 'no page errors');
  } finally {
    await browser.close();
  }
});

test('without WebGPU the CPU fallback shows a banner and the same numbers', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: false });
  try {
    const { page, errors } = await openApp(browser, server.url);
    const banner = page.locator('[data-testid=cpu-fallback]');
    await banner.waitFor({ timeout: 30_000 });
    assert.match(await banner.innerText(), /Running on the CPU/);
    await typeText(page, SENTENCE);
    const reference = cliTrace(SENTENCE);
    const snap = await settle(page, { text: SENTENCE, gpuTokens: reference.tokens.length, gpu: false });
    const diff = maxAbsDiff(snap.matrix, traceMatrix(reference, 0, 0, 'weights'), 'CPU fallback weights');
    assert.ok(diff <= 1e-4, `CPU fallback weights: ${diff}`);
    await page.locator('[data-stage=raw]').click();
    const raw = await settle(page, { stage: 'raw' });
    assert.ok(maxAbsDiff(raw.matrix, traceMatrix(reference, 0, 0, 'raw'), 'raw') <= 1e-4);
    const stats = await canvasStats(page);
    assert.ok(stats.stdLuminance > 10 && stats.distinctColours > 20, `the 2D heatmap is drawn: ${JSON.stringify(stats)}`);
    assert.equal(raw.bytesReadBack, 0, 'nothing is read from a GPU');
    await screenshot(page, 'cpu-fallback.png');
    assert.deepEqual(errors.filter((e) => !/WebGPU|adapter/i.test(e)), [], 'no unexpected page errors');
  } finally {
    await browser.close();
  }
});

/** The longest text of repeated words with at most `n` tokens (counted by the CLI's tokenizer). */
function textOfTokens(n) {
  const words = 'the quick brown fox jumps over a lazy dog and'.split(' ');
  const text = (count) => Array.from({ length: count }, (_, i) => words[i % words.length]).join(' ');
  const tokens = (count) => {
    try { return cliTrace(text(count), 'causal', { quiet: true }).tokens.length; } catch { return Infinity; } // past the context
  };
  let [lo, hi] = [1, n]; // tokens(lo) ≤ n; at least one token per word, so tokens(n + 1) > n
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (tokens(mid) <= n) lo = mid; else hi = mid - 1;
  }
  return text(lo);
}

/** Input-to-heatmap time of one keystroke appended to a text of `n − 1` tokens, and the bytes it read back. */
async function keystrokeCost(page, n) {
  const text = textOfTokens(n - 1);
  await page.locator('#text-input').fill(text);
  await page.waitForFunction((t) => window.attnscope.state().text === t && window.attnscope.state().renders > 0,
    text, { timeout: 60_000 });
  await page.waitForTimeout(800); // let the reads of that run finish
  const before = await page.evaluate(() => window.attnscope.state());
  await page.locator('#text-input').press('End');
  await page.locator('#text-input').press('s');
  await page.waitForFunction((r) => {
    const s = window.attnscope.state();
    return s.runs > r && s.latencyMs !== null;
  }, before.runs, { timeout: 60_000 });
  await page.waitForTimeout(800);
  const after = await page.evaluate(() => window.attnscope.state());
  return { tokens: after.gpuTokens, ms: after.latencyMs, bytes: after.bytesReadBack - before.bytesReadBack };
}

test('keystroke cost at 32 and 128 tokens, per backend', { timeout: 600_000 }, async () => {
  for (const webgpu of [true, false]) {
    const browser = await launch({ webgpu });
    try {
      const { page } = await openApp(browser, server.url);
      await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
      for (const n of [32, 128]) {
        const cost = await keystrokeCost(page, n);
        const backend = webgpu ? 'WebGPU (SwiftShader: CPU emulation)' : 'CPU reference (wasm)';
        console.log(`${backend}: ${cost.tokens} tokens, input → heatmap ${cost.ms.toFixed(1)} ms, ` +
          `${cost.bytes} bytes read back for the keystroke`);
        assert.ok(cost.ms > 0, 'the latency is measured');
        if (!webgpu) assert.equal(cost.bytes, 0);
      }
    } finally {
      await browser.close();
    }
  }
});

test('a lost GPU device: the page carries on with the CPU, then goes back to WebGPU', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page } = await openApp(browser, server.url);
    const text = 'It is a truth universally acknowledged';
    await typeText(page, text);
    await settle(page, { text, gpu: true });
    await page.evaluate(() => window.attnscope.loseGpu());
    await page.waitForTimeout(500);
    await page.locator('#text-input').press('End');
    await page.locator('#text-input').press('!');
    const lost = `${text}!`;
    await page.locator('[data-testid=cpu-fallback]').waitFor({ timeout: 30_000 });
    const cpu = await settle(page, { text: lost, gpu: false });
    const ref = cliTrace(lost);
    assert.equal(cpu.gpuTokens, ref.tokens.length);
    assert.ok(maxAbsDiff(cpu.matrix, traceMatrix(ref, 0, 0, 'weights'), 'after the loss') <= 1e-4);
    assert.match(cpu.gpuError, /GPU/);

    await page.locator('button.retry-gpu').click();
    await page.waitForFunction(() => window.attnscope.state().gpu === true, null, { timeout: 60_000 });
    const back = await settle(page, { text: lost, gpu: true });
    assert.ok(maxAbsDiff(back.matrix, traceMatrix(ref, 0, 0, 'weights'), 'back on WebGPU') <= 1e-4);
    assert.equal(await page.locator('[data-testid=cpu-fallback]').count(), 0, 'the banner is gone');
  } finally {
    await browser.close();
  }
});
