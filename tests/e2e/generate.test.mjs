// Generation and sampling (issue 7, parts 1 and 2): a seed reproduces its ten
// tokens, another seed changes them, the browser's continuation is the CLI's
// (same sampler, CPU reference there, the page's backend here), the KV cache
// shown is the cost model's, and three seeds side by side mark where they branch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { serveDist, launch, openApp, screenshot, CLI, MODEL_CONFIG as config } from './harness.mjs';

let server;
before(async () => { server = await serveDist(); });
after(async () => { await server.close(); });

async function generateTen(page, button = '.gen-ten') {
  await page.locator(button).click();
  await page.waitForFunction(() => window.attnscope.state().generated.length === 10, null, { timeout: 120_000 });
  await page.waitForFunction(() => {
    const s = window.attnscope.state();
    return s.gpuTokens === s.tokens.length; // the page has run on every generated token
  }, null, { timeout: 60_000 });
  return page.evaluate(() => window.attnscope.state());
}

test('a seed reproduces its continuation, another seed changes it, and the KV cache is the cost model\'s', { timeout: 400_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const prompt = 'It is a truth universally acknowledged';
    const { page, errors } = await openApp(browser, `${server.url}#text=${encodeURIComponent(prompt)}&t=0.9&seed=3`);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    const first = await generateTen(page);
    const ids = first.generated.map((g) => g.id);
    assert.equal(first.text, prompt, 'the prompt is kept; the tokens come after it');

    // The CLI's sampler on the CPU reference gives the same ten tokens.
    const cli = execFileSync(CLI, ['generate', '--prompt', prompt, '--steps', '10', '--temperature', '0.9',
      '--seed', '3', '--json']).toString().trim().split('\n').map((l) => JSON.parse(l).id);
    assert.deepEqual(ids, cli, 'same seed, same tokens as `attnscope generate` on the CPU');

    // The KV cache table: 2 · d · layers · 4 bytes per token.
    const t = first.tokens.length;
    const expected = 2 * config.n_embd * config.n_layer * 4 * t;
    assert.equal(first.kvBytes, expected);
    assert.equal(Number(await page.locator('[data-testid=kv-total]').innerText()), expected);
    assert.match(await page.locator('[data-testid=gen-cost]').innerText(), /with the KV cache/);
    // The new token's query row over every cached key: the shown weights are the heatmap's last row.
    await page.waitForFunction((n) => document.querySelectorAll('.new-row-key').length === n, t, { timeout: 30_000 });
    const shownRow = await page.locator('.new-row-key').evaluateAll((els) => els.map((e) => Number(/weight (-?[\d.]+)/.exec(e.title)[1])));
    const snap = await page.evaluate(() => window.attnscope.snapshot());
    assert.equal(snap.stage, 'weights');
    shownRow.forEach((w, j) => assert.ok(Math.abs(w - snap.matrix[t - 1][j]) < 1e-4, `key ${j}: ${w} vs ${snap.matrix[t - 1][j]}`));
    assert.ok(Math.abs(shownRow.reduce((a, b) => a + b, 0) - 1) < 1e-3, 'the row sums to 1');
    assert.deepEqual([snap.hover?.row, snap.locked], [t - 1, true], 'the heatmap focuses the new query row');
    await screenshot(page, 'generate-desktop.png');

    const again = await generateTen(page, '.gen-again');
    assert.deepEqual(again.generated.map((g) => g.id), ids, 'Run again with the same seed: the same text');

    await page.locator('.gen-new-seed').click();
    await page.waitForFunction(() => window.attnscope.state().seed === 4);
    const other = await generateTen(page, '.gen-again');
    assert.notDeepEqual(other.generated.map((g) => g.id), ids, 'another seed: another text');
    await page.waitForFunction(() => /seed=4/.test(location.hash), null, { timeout: 5_000 });

    // Three seeds side by side, the branching token marked with its probability.
    await page.locator('.gen-compare-button').click();
    await page.waitForSelector('.branch-row');
    assert.equal(await page.locator('.branch-row').count(), 3);
    assert.ok(await page.locator('.gen-token.branch').count() >= 1, 'where the seeds branch is marked');

    // Temperature 0 is greedy and says so.
    await page.evaluate(() => { location.hash = location.hash.replace(/t=[\d.]+/, 't=0'); });
    await page.waitForFunction(() => window.attnscope.state().temperature === 0);
    assert.match(await page.locator('[data-testid=gen-determinism]').innerText(), /greedy/);

    // Editing the text starts a new prompt.
    await page.locator('#text-input').click();
    await page.keyboard.press('End');
    await page.keyboard.type('!');
    await page.waitForFunction(() => window.attnscope.state().generated.length === 0);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    await screenshot(page, 'generate-phone.png');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
