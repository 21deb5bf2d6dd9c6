// The page as a first-time learner meets it (issue 20, the parts built so
// far): the value next to the cell the pointer or the keyboard is on, a panel
// bar that stays on screen with one entry per panel named as its heading, a
// skip link to the heatmap, the stepper's focus following the arrow keys, a
// theme button that names what a click does, a model grid with no empty rows,
// and probabilities and byte counts that read the same everywhere.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serveDist, launch, openApp, screenshot, MODEL_CONFIG } from './harness.mjs';

let server;
before(async () => { server = await serveDist(); });
after(async () => { await server.close(); });

async function ready(page) {
  await page.waitForFunction(() => {
    const s = window.attnscope && window.attnscope.state();
    return s && s.phase === 'ready' && s.renders > 0 && s.runs > 0;
  }, null, { timeout: 60_000 });
}

test('the hovered and the keyboard-focused value float next to the cell, inside the window', { timeout: 200_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, server.url);
    await ready(page);
    const canvas = page.locator('canvas.heatmap-canvas:not(.off)');
    await canvas.scrollIntoViewIfNeeded();
    const box = await canvas.boundingBox();
    const t = (await page.evaluate(() => window.attnscope.state())).gpuTokens;
    for (const [fx, fy] of [[0.5, 0.5], [0.95, 0.97], [0.02, 0.02]]) {
      const [x, y] = [box.x + fx * box.width, box.y + fy * box.height];
      await page.mouse.move(x, y);
      await page.waitForFunction(() => window.attnscope.state().hover !== null, null, { timeout: 10_000 });
      const tip = page.locator('[data-testid=readout-tip]');
      await tip.waitFor({ timeout: 10_000 });
      await page.waitForFunction(() => !document.querySelector('[data-testid=readout-tip]').textContent.includes('reading'));
      const tb = await tip.boundingBox();
      const view = page.viewportSize();
      assert.ok(tb.x >= 0 && tb.y >= 0 && tb.x + tb.width <= view.width && tb.y + tb.height <= view.height,
        `the readout is inside the window at (${fx}, ${fy}): ${JSON.stringify(tb)}`);
      const dx = Math.max(tb.x - x, 0, x - (tb.x + tb.width));
      const dy = Math.max(tb.y - y, 0, y - (tb.y + tb.height));
      assert.ok(Math.hypot(dx, dy) <= 2.5 * box.height / t + 20, `the readout is next to the pointer (${dx}, ${dy})`);
      const hover = (await page.evaluate(() => window.attnscope.state())).hover;
      assert.match(await tip.innerText(), new RegExp(`row ${hover.row}\\b.*column ${hover.col}\\b`), 'it reads the hovered cell');
    }
    // The keyboard: the value follows the focused cell.
    await page.mouse.move(0, 0);
    await canvas.focus();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction(() => {
      const h = window.attnscope.state().hover;
      return h && h.row === 1 && h.col === 1;
    }, null, { timeout: 10_000 });
    const tb = await page.locator('[data-testid=readout-tip]').boundingBox();
    const cell = { x: box.x + 1.5 * box.width / t, y: box.y + 1.5 * box.height / t };
    assert.ok(Math.abs(tb.y - cell.y) < 3 * box.height / t + 20 && Math.abs(tb.x - cell.x) < 80,
      `the readout is next to the keyboard's cell: ${JSON.stringify(tb)} vs ${JSON.stringify(cell)}`);
    await screenshot(page, 'first-visit-readout.png');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('the panel bar stays on screen, names every panel as its heading and moves the focus there; a skip link reaches the heatmap', { timeout: 200_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, server.url);
    await ready(page);
    const links = await page.locator('.nav-link').allInnerTexts();
    const panels = await page.locator('main .panel').count();
    assert.equal(links.length, panels, `one entry per panel (${links.join(', ')})`);
    // The address follows the page once it is still; wait for it before comparing.
    await page.waitForFunction(() => location.hash.includes('seed='));
    const hash = await page.evaluate(() => location.hash);
    for (const label of links) {
      await page.locator('.nav-link', { hasText: new RegExp(`^${label}$`) }).click();
      await page.waitForTimeout(150);
      const where = await page.evaluate(() => {
        const a = document.activeElement;
        const nav = document.querySelector('.panel-nav').getBoundingClientRect();
        const panel = a.closest('.panel');
        const heading = panel.querySelector('.panel-heading');
        const r = a.getBoundingClientRect();
        return { tag: a.tagName, heading: heading ? heading.textContent : null, label: a.id === 'text-input' ? 'Text' : a.textContent,
          navTop: nav.top, navBottom: nav.bottom, top: r.top, inView: r.top >= nav.bottom - 1 && r.top < innerHeight };
      });
      assert.equal(where.label, label, `the focus is on the panel named “${label}”`);
      if (where.heading !== null) assert.equal(where.heading, label, 'the bar names the panel as its heading');
      assert.ok(where.navTop >= -1 && where.navBottom <= 80, `the bar stays at the top (${where.navTop}..${where.navBottom})`);
      assert.ok(where.inView, `the panel's heading is in view below the bar: ${JSON.stringify(where)}`);
    }
    assert.equal(await page.evaluate(() => location.hash), hash, 'the bar leaves the address alone');

    // From the page's top, the skip link is the first Tab stop and lands on the heatmap.
    await page.reload();
    await ready(page);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to the heatmap');
    await page.keyboard.press('Enter');
    assert.ok(await page.evaluate(() => document.activeElement.matches('canvas.heatmap-canvas:not(.off)')),
      'Enter on the skip link focuses the heatmap');

    // The stepper: the arrow keys change the stage and the focus follows to its button.
    await page.locator('[data-stage=weights]').focus();
    await page.keyboard.press('ArrowLeft');
    await page.waitForFunction(() => window.attnscope.state().stage === 'masked');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.stage), 'masked');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('the theme button names the theme a click gives, also on a dark system; the top bar is one line at 1280 px', { timeout: 200_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    for (const scheme of ['light', 'dark']) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, colorScheme: scheme });
      await page.goto(server.url);
      await ready(page);
      const button = page.locator('.theme-button');
      const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      const before = await bg();
      const other = scheme === 'dark' ? 'Light theme' : 'Dark theme';
      assert.equal(await button.innerText(), other, `on a ${scheme} system the button offers the other theme`);
      await button.click();
      assert.notEqual(await bg(), before, `on a ${scheme} system the first click changes the page`);
      assert.equal(await button.innerText(), scheme === 'dark' ? 'Dark theme' : 'Light theme');
      const bar = await page.evaluate(() => {
        const items = [...document.querySelectorAll('.topbar > *')].map((e) => e.getBoundingClientRect());
        const middles = items.map((r) => (r.top + r.bottom) / 2);
        return { spread: Math.max(...middles) - Math.min(...middles), right: Math.max(...items.map((r) => r.right)) };
      });
      assert.ok(bar.spread < 6, `the top bar is one line (middles spread over ${bar.spread} px)`);
      assert.ok(bar.right <= 1280, 'nothing runs off the top bar');
      await page.close();
    }
  } finally {
    await browser.close();
  }
});

test('the model grid has no empty rows; a drawn token never reads 0.0 %; the KV cache reads alike in both panels', { timeout: 200_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, server.url);
    await ready(page);
    const grid = await page.locator('canvas.grid-canvas:not(.off)').boundingBox();
    const { n_layer, n_head } = MODEL_CONFIG;
    const side = (grid.width - 6 * (n_head - 1) / 1) / n_head; // tiles are square; gaps are 6 device px
    assert.ok(grid.height <= n_layer * side + 6 * n_layer + 2, `the grid is as tall as its ${n_layer} layers (${grid.height} px for tiles of ${side.toFixed(1)} px)`);

    // Generate with top-k 1 at a high temperature: the drawn token may have a tiny probability.
    await page.locator('.gen-topk').fill('1');
    await page.locator('.gen-topk').dispatchEvent('change');
    await page.locator('#temperature').evaluate((el) => { el.value = '2'; el.dispatchEvent(new Event('input', { bubbles: true })); });
    await page.locator('.gen-step').click();
    await page.waitForFunction(() => window.attnscope.state().generated.length === 1, null, { timeout: 60_000 });
    const last = await page.locator('[data-testid=gen-last]').innerText();
    assert.doesNotMatch(last, /p = 0\.0 %/, last);
    assert.match(last, /p = \d/, last);
    const kv = await page.locator('[data-testid=kv-table] caption').innerText();
    const cost = await page.locator('[data-testid=cost-summary]').innerText();
    const bytes = kv.match(/: (.*)$/)[1];
    assert.match(bytes, /bytes\)?$/);
    assert.ok(cost.includes(`a KV cache of ${bytes}`), `both panels use one byte format: “${kv}” / “${cost}”`);
    await page.locator('.gen-compare-button').click();
    await page.waitForSelector('[data-testid=branches-key]', { timeout: 60_000 });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('while the model loads the page says so and its Generate and Measure buttons wait', { timeout: 200_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    let release;
    const held = new Promise((r) => { release = r; });
    await page.route('**/model.safetensors.shuffled', async (route) => { await held; await route.continue(); });
    await page.goto(server.url);
    await page.waitForSelector('[data-testid=token-count]');
    assert.equal(await page.locator('[data-testid=token-count]').innerText(), 'Loading the model…');
    // The download's bar is up (moving until the server says how much is coming).
    assert.equal(await page.locator('[data-testid=loading] progress.download').count(), 1);
    for (const button of ['.gen-step', '.gen-ten', '.gen-play', '.gen-compare-button', '.measure-button', '.dilution-run']) {
      assert.ok(await page.locator(button).isDisabled(), `${button} waits for the model`);
    }
    release();
    await ready(page);
    assert.match(await page.locator('[data-testid=token-count]').innerText(), /^\d+ tokens · context holds \d+$/);
    for (const button of ['.gen-step', '.gen-ten', '.gen-play', '.gen-compare-button', '.measure-button', '.dilution-run']) {
      assert.ok(await page.locator(button).isEnabled(), `${button} works once the model is in`);
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
