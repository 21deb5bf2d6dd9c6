// Presenter mode (issue 8, part 3): the keyboard (and a clicker's PageUp /
// PageDown) steps through every stage from the tokens to the sample, each
// with its caption, in large type on the high-contrast theme; M toggles the
// mask, ↑↓ move the focused token, a link restores the slide.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serveDist, launch, openApp, cliTrace, traceMatrix, maxAbsDiff, screenshot, MODEL_CONFIG } from './harness.mjs';

const { n_layer: L } = MODEL_CONFIG;
const layers = [...Array(L).keys()];

let server;
before(async () => { server = await serveDist(); });
after(async () => { await server.close(); });

const state = (page) => page.evaluate(() => window.attnscope.state());

test('presenter mode steps through every stage by keyboard', { timeout: 400_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const text = 'The cat sat on the mat';
    const { page, errors } = await openApp(browser, `${server.url}#text=${encodeURIComponent(text)}&head=1`);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    await page.locator('.present-button').click();
    await page.waitForFunction(() => window.attnscope.state().present === 0);
    assert.equal(await page.evaluate(() => document.documentElement.getAttribute('data-theme')), 'contrast');
    assert.equal(await page.locator('.topbar').isVisible(), false, 'the page chrome is hidden');
    const fontPx = await page.evaluate(() => parseFloat(getComputedStyle(document.querySelector('.app')).fontSize));
    assert.ok(fontPx >= 20, `large type (${fontPx}px)`);

    // Walk forward with every "next" key a presenter or a clicker sends.
    const keys = ['ArrowRight', 'PageDown', 'Space'];
    const seen = [];
    for (let i = 0; ; i++) {
      const s = await state(page);
      const caption = await page.locator('[data-testid=present-caption]').innerText();
      assert.ok(caption.length > 20, `slide ${i} has a caption`);
      seen.push({ slide: s.slide, panel: s.panel, stage: s.stage, layer: s.layer });
      if (s.slide === 'Sample') break;
      assert.ok(i < 60, 'the presentation ends');
      await page.keyboard.press(keys[i % keys.length]);
      await page.waitForFunction((n) => window.attnscope.state().present === n, i + 1);
    }
    const titles = seen.map((x) => x.slide);
    assert.deepEqual(titles.slice(0, 3), ['Tokens', 'Embeddings', 'Layer 0 · head 1 · Queries Q']);
    assert.deepEqual(seen.map((x) => x.panel).filter((p, i, a) => p !== a[i - 1]).slice(0, 4),
      ['tokens', 'residual', 'stage', 'residual']);
    for (const stage of ['q', 'k', 'v', 'raw', 'scaled', 'masked', 'weights', 'out']) {
      for (const layer of layers) {
        assert.ok(seen.some((x) => x.panel === 'stage' && x.stage === stage && x.layer === layer), `${stage} of layer ${layer}`);
      }
    }
    for (const layer of layers.slice(1)) assert.ok(titles.includes(`Into layer ${layer}`));
    assert.deepEqual(titles.slice(-2), ['Logits → next-token distribution', 'Sample']);
    assert.equal(titles.length, 2 + 8 * L + (L - 1) + 2, 'tokens, embeddings, 8 stages a layer, L − 1 steps between, logits, sample');
    const last = await state(page);
    assert.ok(Number.isInteger(last.picked) && last.picked < last.next.length, 'a drawn token is marked');
    await page.waitForSelector('.next-item.picked');
    assert.match(await page.locator('[data-testid=present-sample]').innerText(), /seed 0 at temperature 1\.00/);
    await screenshot(page, 'present-sample.png');

    // Back with PageUp to the softmax of the last layer; the mask key and the focused token.
    while ((await state(page)).stage !== 'weights' || (await state(page)).panel !== 'stage') {
      await page.keyboard.press('PageUp');
    }
    const onWeights = await state(page);
    assert.equal(onWeights.layer, L - 1);
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    await page.waitForFunction(() => window.attnscope.state().hover?.row === 1);
    assert.equal((await state(page)).locked, true);
    await page.keyboard.press('m');
    await page.waitForFunction(() => window.attnscope.state().mask === 'bidirectional');
    await page.waitForFunction((r) => window.attnscope.state().runs > r, onWeights.runs);
    const snap = await page.evaluate(() => window.attnscope.snapshot());
    assert.ok(maxAbsDiff(snap.matrix, traceMatrix(cliTrace(text, 'bidirectional', { quiet: true }), L - 1, 1, 'weights'),
      'presented softmax, bidirectional') <= 1e-4);
    await page.mouse.move(400, 300);
    await page.waitForSelector('.pointer-spot');
    await screenshot(page, 'present-desktop.png');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    await screenshot(page, 'present-phone.png');
    await page.setViewportSize({ width: 1280, height: 900 });

    // The link restores the slide; Esc leaves presenter mode.
    await page.waitForFunction(() => /present=\d+/.test(location.hash));
    const link = await page.evaluate(() => location.href);
    const again = await openApp(browser, link);
    await again.page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    const restored = await state(again.page);
    assert.deepEqual([restored.slide, restored.mask, restored.layer, restored.head],
      [onWeights.slide, 'bidirectional', L - 1, 1]);
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => window.attnscope.state().present === null);
    assert.equal(await page.locator('.topbar').isVisible(), true);
    // Leaving restores what presenting changed: the mask, and the focus (on the button that began it).
    await page.waitForFunction(() => window.attnscope.state().mask === 'causal');
    await page.waitForFunction(() => document.activeElement?.classList.contains('present-button'));
    // A Space pressed at once after the Present button, before the bar's ›
    // takes the focus, steps the slides: it once pressed the hidden Present
    // button instead and was lost (3 of 5 tries lost it; the keyboard walk
    // above failed in CI this way). Several tries, as it is a race.
    for (let k = 0; k < 4; k++) {
      await page.locator('.present-button').click();
      await page.keyboard.press(' ');
      await page.waitForFunction(() => window.attnscope.state().present === 1, null, { timeout: 10_000 });
      await page.keyboard.press('Escape');
      await page.waitForFunction(() => window.attnscope.state().present === null);
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('presenter buttons do what they say under Enter and Space; the slide title is the page\'s h1', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, `${server.url}#text=${encodeURIComponent('The cat sat on the mat')}`);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    await page.locator('.present-button').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => window.attnscope.state().present === 0);
    assert.equal(await page.locator('h1:visible').count(), 1, 'one visible h1');
    assert.equal(await page.locator('h1:visible').innerText(), 'Tokens');
    // The focus starts on the presenter's own controls.
    await page.waitForFunction(() => document.activeElement?.closest('.present-controls') !== null);
    const control = (label) => page.locator('.present-controls button', { hasText: label });
    // Next (›) under Enter, back (‹) under Space: one step each, not two.
    await control('›').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => window.attnscope.state().present === 1);
    await page.waitForTimeout(200);
    assert.equal((await state(page)).present, 1, 'Enter pressed the button once and did not also step');
    await control('‹').focus();
    await page.keyboard.press(' ');
    await page.waitForFunction(() => window.attnscope.state().present === 0);
    // The mask button changes the mask, and only that.
    await control('Mask').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => window.attnscope.state().mask === 'bidirectional');
    assert.equal((await state(page)).present, 0, 'the slide stays');
    // Exit leaves, restores the mask and gives the focus back to the Present button.
    await control('Exit').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => window.attnscope.state().present === null);
    await page.waitForFunction(() => window.attnscope.state().mask === 'causal');
    await page.waitForFunction(() => document.activeElement?.classList.contains('present-button'));
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('with a prompt B the presentation ends on the two-prompt diff', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const [a, b] = ['The cat sat on the mat because it was tired.', 'The cat sat on the bed because it was tired.'];
    const { page, errors } = await openApp(browser,
      `${server.url}#text=${encodeURIComponent(a)}&diff=${encodeURIComponent(b)}&layer=${L - 1}&head=2`);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    await page.locator('.present-button').click();
    await page.waitForFunction(() => window.attnscope.state().present === 0);
    await page.keyboard.press('End');
    const slides = 2 + 8 * L + (L - 1) + 2 + 1;
    await page.waitForFunction((n) => window.attnscope.state().present === n, slides - 1);
    const s = await state(page);
    assert.equal(s.slide, 'Two prompts · head 2 · A − B');
    assert.deepEqual([s.panel, s.stage, s.layer], ['diff', 'weights', L - 1]);
    await page.waitForSelector('[data-testid=diff-figure]', { timeout: 60_000 });
    const [wa, wb] = [a, b].map((t) => traceMatrix(cliTrace(t, 'causal', { quiet: true }), L - 1, 2, 'weights'));
    let span = 0;
    wa.forEach((row, i) => row.forEach((x, j) => { span = Math.max(span, Math.abs(x - wb[i][j])); }));
    const shown = Number(await page.locator('[data-testid=diff-figure]').getAttribute('data-span'));
    assert.ok(Math.abs(shown - span) <= 1e-4, `largest |A − B| ${shown} vs CLI ${span}`);
    assert.ok(await page.locator('[data-testid=diff-prompts]').isVisible(), 'both prompts are shown');
    assert.ok(!(await page.locator('#diff-b').isVisible()), 'no text box on the slide');
    await screenshot(page, 'present-diff.png');
    // One step back is the sample slide, as without a prompt B.
    await page.keyboard.press('ArrowLeft');
    await page.waitForFunction((n) => window.attnscope.state().present === n, slides - 2);
    assert.equal((await state(page)).slide, 'Sample');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
