// The cost panel (issue 7, part 3) and the dilution panel (part 5): curves
// from the cost model for the loaded model, the forward pass timed live with
// a progress bar, and attention to a marked token falling as filler is added.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serveDist, launch, openApp, screenshot, MODEL_CONFIG as config } from './harness.mjs';

let server;
before(async () => { server = await serveDist(); });
after(async () => { await server.close(); });


test('cost panel: the model\'s own cost curves and a live timing', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const text = 'The cat sat on the mat because it was tired.';
    const { page, errors } = await openApp(browser, `${server.url}#text=${encodeURIComponent(text)}`);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    const t = (await page.evaluate(() => window.attnscope.state())).tokens.length;
    // The panel bar scrolls to a panel without touching the address (it holds the page's state).
    // The address follows the page once it is still; wait for it before comparing.
    await page.waitForFunction(() => location.hash.includes('seed='));
    const hash = await page.evaluate(() => location.hash);
    await page.locator('.nav-link', { hasText: 'Cost' }).click();
    await page.waitForFunction(() => {
      const r = document.querySelector('.cost-panel').getBoundingClientRect();
      return r.top >= -2 && r.top < window.innerHeight / 2;
    }, null, { timeout: 5_000 });
    assert.equal(await page.evaluate(() => location.hash), hash);
    const summary = await page.locator('[data-testid=cost-summary]').innerText();
    const entries = config.n_layer * config.n_head * t * t;
    assert.match(summary, new RegExp(`At T = ${t}: ${entries < 1000 ? entries : (entries / 1000).toFixed(1) + 'k'} attention-matrix entries`));
    assert.match(summary, /multiplies attention by 4\.0 but the rest by 2\.0/);
    assert.equal(await page.locator('[data-testid=cost-flops] path').count(), 2);
    // A point's tooltip holds its number.
    const tip = await page.locator('[data-testid=cost-flops] circle title').first().textContent();
    assert.match(tip, /at T = 1: /);

    const runsBefore = (await page.evaluate(() => window.attnscope.state())).runs;
    await page.locator('.measure-button').click();
    await page.waitForSelector('.measure-progress', { timeout: 10_000 });
    await page.waitForSelector('[data-testid=cost-timings] tbody tr', { timeout: 200_000 });
    await page.waitForFunction(() => !document.querySelector('.measure-progress'), null, { timeout: 200_000 });
    const rows = await page.locator('[data-testid=cost-timings] tbody tr').allInnerTexts();
    assert.equal(rows.length, [8, 16, 32, 64, 128, 256, 512, 1024].filter((x) => x <= config.n_positions).length);
    for (const r of rows) assert.ok(Number(r.split('\t')[1]) > 0, `timed: ${r}`);
    // The timing runs on a forward pass of its own: the page's run is untouched.
    const after = await page.evaluate(() => window.attnscope.state());
    assert.equal(after.runs, runsBefore, 'the page did not re-run');
    assert.equal(after.gpuTokens, t);
    await page.locator('.cost-panel').scrollIntoViewIfNeeded();
    await screenshot(page, 'cost-desktop.png');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('dilution panel: later tokens give a marked token less as filler grows; first-token sinks', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const text = 'Answer in French. What is the capital of England?';
    const { page, errors } = await openApp(browser, `${server.url}#text=${encodeURIComponent(text)}`);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    // Its token list follows the text while the panel is on screen: scrolled to, as a reader would.
    await page.locator('.dilution-panel').scrollIntoViewIfNeeded();
    await page.locator('.dilution-token').selectOption('2');
    await page.locator('.dilution-run').click();
    await page.waitForSelector('[data-testid=sink-table]', { timeout: 60_000 });
    await page.waitForFunction(() => !document.querySelector('.dilution-run').disabled, null, { timeout: 200_000 });
    const paths = await page.locator('[data-testid=dilution-chart] path').count();
    assert.equal(paths, config.n_head, 'a line per head of the layer');
    const dots = await page.locator('[data-testid=dilution-chart] circle').count();
    assert.ok(dots >= 4 * config.n_head, `several context lengths (${dots / config.n_head})`);
    const sinks = await page.locator('[data-sink]').evaluateAll((els) => els.map((e) => Number(e.dataset.sink)));
    assert.equal(sinks.length, config.n_layer * config.n_head);
    assert.ok(sinks.every((v) => v >= 0 && v <= 1));
    assert.match(await page.locator('[data-testid=dilution-summary]').innerText(), /less\)/);
    await page.locator('.dilution-panel').scrollIntoViewIfNeeded();
    await screenshot(page, 'dilution-desktop.png');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
