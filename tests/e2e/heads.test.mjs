// Which heads matter (issue 16): the head finder ranks the default model's
// induction heads (layer 1) top on a repeated random sequence, the logit lens
// table shows, the direct contributions sum to the logit shown, ablating the
// induction heads drops the repeated token's probability (against the CLI's
// `ablate`), the sweep finishes and exports, and a link restores the state;
// on WebGPU (SwiftShader) and on the CPU fallback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { serveDist, launch, openApp, typeText, screenshot, CLI, cliTrace, traceMatrix, maxAbsDiff } from './harness.mjs';

// Ten made-up words twice, then the first three again: the next word (" moon") is predicted by induction.
const WORDS = ' lily rose vast moon drip clay fern oak jazz quip';
const TEXT = `${WORDS}${WORDS} lily rose vast`;
const TEXT_B = `${WORDS}${WORDS} lily rose oak`;
let server;

before(async () => { server = await serveDist(); });
after(async () => { await server.close(); });

function cli(args) {
  return JSON.parse(execFileSync(CLI, args, { maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] }).toString());
}

async function ready(page, text) {
  await page.waitForFunction((t) => {
    const s = window.attnscope.state();
    return s.text === t && s.gpuTokens > 0 && s.runs > 0;
  }, text, { timeout: 60_000 });
}

async function checkPage(webgpu, tag) {
  const browser = await launch({ webgpu });
  try {
    const { page, errors } = await openApp(browser, server.url);
    assert.equal((await page.evaluate(() => window.attnscope.state())).gpu, webgpu, 'backend');
    await typeText(page, TEXT);
    await ready(page, TEXT);

    // 1. The head finder: induction ranks layer-1 heads top.
    await page.locator('.finder-panel').scrollIntoViewIfNeeded();
    await page.locator('.finder-template[data-template=induction]').click();
    // The list ranks the template chosen once its scores arrive (until then it shows the last ones, dimmed).
    const induction = page.locator('.finder-list[data-template=induction][aria-busy=false] .finder-head');
    await induction.first().waitFor({ timeout: 30_000 });
    const ranked = await induction.evaluateAll((els) =>
      els.map((e) => ({ layer: +e.dataset.layer, head: +e.dataset.head, score: +e.dataset.score })));
    assert.equal(ranked[0].layer, 1, `top induction head in layer 1: ${JSON.stringify(ranked)}`);
    assert.equal(ranked[1].layer, 1, `second induction head in layer 1: ${JSON.stringify(ranked)}`);
    assert.ok(ranked[0].score > 0.3, `a real induction head: ${ranked[0].score}`);
    const inductionHeads = ranked.slice(0, 2).map((r) => [r.layer, r.head]);
    // The grid is outlined, its best heads numbered.
    await page.locator('.model-panel').scrollIntoViewIfNeeded();
    await page.locator('.finder-rank').first().waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('.finder-rank').count(), 3);
    await screenshot(page, `heads-finder-${tag}.png`);
    // One click opens the best head in the attention panel.
    await page.locator('.finder-panel').scrollIntoViewIfNeeded();
    await page.locator('.finder-head').first().click();
    await page.waitForFunction(([l, h]) => window.attnscope.state().layer === l && window.attnscope.state().head === h,
      inductionHeads[0]);
    // Painted: the previous-token diagonal ranks a head; painting by keyboard changes the grid.
    await page.locator('.finder-template[data-template=painted]').click();
    await page.locator('.paint-cell').first().focus();
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('Space');
    assert.equal(await page.locator('.paint-cell[data-cell="0-1"]').getAttribute('aria-pressed'), 'true');
    await page.locator('.finder-head').first().waitFor();

    // "Attends to token X": a chip picks the token, the heads are ranked by it.
    await page.locator('.finder-template[data-template=token]').click();
    await page.locator('.token-chip').nth(2).click();
    assert.equal(await page.locator('.token-chip').nth(2).getAttribute('aria-pressed'), 'true');
    await page.locator('.finder-head').first().waitFor({ timeout: 30_000 });
    await page.locator('.finder-template[data-template=painted]').click();

    // 2. The logit lens and direct contributions.
    await page.locator('.lens-panel').scrollIntoViewIfNeeded();
    await page.locator('[data-testid=lens-table]').waitFor({ timeout: 30_000 });
    const rows = await page.locator('[data-testid=lens-table] tbody tr').count();
    assert.equal(rows, 2 * 2 + 1, 'embeddings + 2 sublayers per layer');
    const sum = page.locator('[data-testid=contrib-sum]');
    await sum.waitFor({ timeout: 30_000 });
    const { total, logit, token } = await sum.evaluate((e) =>
      ({ total: +e.dataset.total, logit: +e.dataset.logit, token: +e.dataset.token }));
    assert.ok(Math.abs(total - logit) < 1e-3, `contributions sum ${total} to the logit ${logit}`);
    const lens = cli(['lens', '--text', TEXT]);
    const lensLogit = lens.direct.logit;
    assert.ok(Math.abs(lensLogit - logit) < 1e-3, `CLI logit ${lensLogit} vs page ${logit}`);
    // Another next token from the list: its contributions, still summing to its logit.
    const other = await page.locator('#lens-token option').nth(2).getAttribute('value');
    await page.locator('#lens-token').selectOption(other);
    await page.waitForFunction((id) => document.querySelector('[data-testid=contrib-sum]')?.dataset.token === id, other,
      { timeout: 30_000 });
    const picked = await sum.evaluate((e) => ({ total: +e.dataset.total, logit: +e.dataset.logit }));
    assert.ok(Math.abs(picked.total - picked.logit) < 1e-3, `picked token: ${JSON.stringify(picked)}`);
    await page.locator('#lens-token').selectOption('');
    await page.waitForFunction((id) => document.querySelector('[data-testid=contrib-sum]')?.dataset.token === id,
      String(token), { timeout: 30_000 });
    await page.locator('.lens-cell').first().focus();
    assert.match(await page.locator('.lens-detail').innerText(), /%.*·/);
    await screenshot(page, `heads-lens-${tag}.png`);

    // 3. Ablating the induction heads drops the repeated word's probability, as the CLI says.
    await page.locator('.ablation-panel').scrollIntoViewIfNeeded();
    for (const [l, h] of inductionHeads) {
      await page.locator(`.ablate-head[data-layer="${l}"][data-head="${h}"]`).click();
    }
    const headList = (hs) => [...hs].sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([l, h]) => `${l}.${h}`).join(',');
    const heads = headList(inductionHeads);
    const result = page.locator('[data-testid=ablation-result]');
    await result.waitFor({ timeout: 30_000 });
    // The outcome of both heads (each click applies what is chosen so far).
    await page.waitForFunction((heads) => {
      const r = document.querySelector('[data-testid=ablation-result]');
      return r && r.dataset.heads === heads;
    }, heads, { timeout: 30_000 });
    const ablated = await result.evaluate((e) => ({ prob: +e.dataset.prob, clean: +e.dataset.cleanProb,
      delta: +e.dataset.delta, reused: +e.dataset.reused }));
    const ref = cli(['ablate', '--text', TEXT, '--heads', heads, '--mode', 'zero']);
    assert.ok(ablated.prob < 0.5 * ablated.clean, `the repeat's probability drops: ${JSON.stringify(ablated)}`);
    const refDelta = ref.delta_logit;
    assert.ok(Math.abs(refDelta - ablated.delta) < 1e-3, `Δlogit ${ablated.delta} vs CLI ${refDelta}`);
    assert.equal(ablated.reused, 1, 'layer 0 reused');
    assert.match(await result.innerText(), /Reused 1 of 2 layers/);

    // Every panel shows the ablated run (the default): a banner names it, the next-token list
    // is the ablated run's, and with a layer-0 head ablated too, layer 1's attention (the view
    // the finder opened) is the CLI's ablated trace; "Show the clean run" puts the clean numbers back.
    const banner = page.locator('[data-testid=intervened-banner]');
    await banner.waitFor({ timeout: 30_000 });
    assert.equal(await banner.getAttribute('data-heads'), '2');
    const top = ref.intervened.top[0];
    await page.waitForFunction((top) => {
      const n = window.attnscope.state().next;
      return n.length > 0 && n[0].id === top.id && Math.abs(n[0].prob - top.prob) < 1e-3;
    }, top, { timeout: 30_000 }).catch(async (e) => {
      console.log('next:', JSON.stringify((await page.evaluate(() => window.attnscope.state())).next.slice(0, 3)), 'CLI', top);
      throw e;
    });
    await page.locator('.ablate-head[data-layer="0"][data-head="0"]').click();
    const three = headList([[0, 0], ...inductionHeads]);
    await page.waitForFunction((h) => document.querySelector('[data-testid=ablation-result]')?.dataset.heads === h,
      three, { timeout: 30_000 });
    const withL0 = cli(['ablate', '--text', TEXT, '--heads', three, '--trace']);
    const clean = cliTrace(TEXT);
    const shown = await page.evaluate(() => window.attnscope.snapshot());
    const expect = (trace) => traceMatrix(trace, shown.layer, shown.head, shown.stage);
    assert.equal(shown.layer, 1, 'the view is on layer 1');
    assert.ok(maxAbsDiff(shown.matrix, expect(withL0.trace), 'ablated view') <= 1e-4, 'the view is the ablated run');
    assert.ok(maxAbsDiff(shown.matrix, expect(clean), 'ablated vs clean') > 1e-3, 'layer 1 attention moved');
    await page.locator('.show-clean').click();
    await page.waitForFunction(() => !document.querySelector('[data-testid=intervened-banner]'), null, { timeout: 30_000 });
    await page.waitForFunction(async ([want, tol]) => {
      const m = (await window.attnscope.snapshot()).matrix;
      return m.every((row, r) => row.every((v, c) => (v === null) === (want[r][c] === null) && (v === null || Math.abs(v - want[r][c]) <= tol)));
    }, [expect(clean), 1e-4], { timeout: 30_000 });
    assert.equal(await page.locator('[data-testid=ablation-result]').getAttribute('data-heads'), three,
      'the outcome stays with the clean run on screen');
    await page.locator('.ablate-show-choice[data-show=ablated]').click();
    await banner.waitFor({ timeout: 30_000 });
    await page.locator('.ablate-head[data-layer="0"][data-head="0"]').click();
    await page.waitForFunction((h) => document.querySelector('[data-testid=ablation-result]')?.dataset.heads === h,
      heads, { timeout: 30_000 });
    // The diff against prompt B runs B with the same heads replaced: its next tokens are the CLI's ablated B's.
    await page.locator('.diff-panel').scrollIntoViewIfNeeded();
    await page.locator('#diff-b').fill(TEXT_B);
    await page.locator('[data-testid=diff-intervened]').waitFor({ timeout: 30_000 });
    const refB = cli(['ablate', '--text', TEXT_B, '--heads', heads, '--mode', 'zero']).intervened.top[0];
    await page.waitForFunction(([a, b]) => {
      const row = (id) => document.querySelector(`[data-testid=diff-next] tr[data-token-id="${id}"]`);
      return row(a.id) && Math.abs(+row(a.id).dataset.pa - a.prob) < 1e-3
        && row(b.id) && Math.abs(+row(b.id).dataset.pb - b.prob) < 1e-3;
    }, [top, refB], { timeout: 30_000 });
    await page.locator('#diff-b').fill('');
    await page.locator('.ablation-panel').scrollIntoViewIfNeeded();

    // The sweep finishes, matches the CLI's grid, and exports.
    await page.locator('.sweep-button').click();
    await page.waitForFunction(() => {
      const s = document.querySelector('[data-testid=sweep-status]');
      return s && s.dataset.done === s.dataset.total && +s.dataset.total > 0;
    }, null, { timeout: 60_000 });
    const sweep = await page.locator('.sweep-cell[data-value]').evaluateAll((els) =>
      els.map((e) => [+e.dataset.layer, +e.dataset.head, +e.dataset.value]));
    const refSweep = cli(['ablate', '--text', TEXT, '--sweep']).sweep.delta_logit;
    for (const [l, h, v] of sweep) {
      assert.ok(Math.abs(refSweep[l][h] - v) < 1e-3, `sweep L${l} H${h}: ${v} vs CLI ${refSweep[l][h]}`);
    }
    for (const format of ['csv', 'svg', 'png']) {
      const [download] = await Promise.all([
        page.waitForEvent('download', { timeout: 30_000 }),
        page.locator(`.sweep-export[data-export=${format}]`).click(),
      ]);
      assert.match(download.suggestedFilename(), new RegExp(`attnscope-sweep-zero\\.${format}$`));
    }
    await screenshot(page, `heads-ablation-${tag}.png`);

    // Patching needs the same token count: a clear message otherwise.
    await page.locator('.ablate-mode[data-mode=patch]').click();
    await page.locator('#patch-source').fill(' short');
    await page.waitForFunction(() => /same count/.test(document.querySelector('[data-testid=patch-note]').innerText));
    // With a second prompt of the same count the heads take their outputs from it, as the CLI's `patch` says.
    await page.locator('#patch-source').fill(TEXT_B);
    await page.waitForFunction(() => /as the text/.test(document.querySelector('[data-testid=patch-note]').innerText));
    const patched = cli(['patch', '--text', TEXT, '--source', TEXT_B, '--heads', heads]).delta_logit;
    await page.waitForFunction((d) => {
      const r = document.querySelector('[data-testid=ablation-result]');
      return r && Math.abs(+r.dataset.delta - d) < 1e-3;
    }, patched, { timeout: 30_000 }).catch(async (e) => {
      console.log('patched Δlogit', await result.getAttribute('data-delta'), 'CLI', patched);
      throw e;
    });
    await page.locator('#patch-source').fill(' short');

    // 5. The two-prompt diff: B with the last word changed (same token count), then a shorter B.
    await page.locator('.diff-panel').scrollIntoViewIfNeeded();
    await page.locator('#diff-b').fill(TEXT_B);
    await page.waitForFunction(() => +document.querySelector('[data-testid=diff-figure]')?.dataset.span > 0, null,
      { timeout: 30_000 });
    assert.ok(await page.locator('[data-testid=diff-next] tbody tr').count() > 0, 'next-token changes listed');
    await screenshot(page, `heads-diff-${tag}.png`);
    await page.locator('#diff-b').fill(' short');
    await page.locator('[data-testid=diff-lengths]').waitFor({ timeout: 30_000 });
    await page.locator('#diff-b').fill(TEXT_B);

    // 4. A link restores it all.
    await page.locator('.finder-template[data-template=painted]').scrollIntoViewIfNeeded();
    // The address follows once the page is still.
    await page.waitForFunction((b) => decodeURIComponent(location.hash).includes(`diff=${b}`), TEXT_B,
      { timeout: 10_000 }).catch(async (e) => {
      console.log('hash:', decodeURIComponent(await page.evaluate(() => location.hash)));
      throw e;
    });
    const link = await page.evaluate(() => location.href);
    assert.match(link, /find=painted/);
    assert.match(link, /ablate=/);
    assert.match(link, /mode=patch/);
    const again = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await again.goto(link);
    await again.waitForFunction(() => window.attnscope && window.attnscope.state().phase === 'ready', null,
      { timeout: 120_000 });
    await ready(again, TEXT);
    assert.equal(await again.locator('.finder-template[data-template=painted]').getAttribute('aria-pressed'), 'true');
    assert.equal(await again.locator('.paint-cell[data-cell="0-1"]').getAttribute('aria-pressed'), 'true');
    assert.equal(await again.locator('#patch-source').inputValue(), ' short');
    assert.equal(await again.locator('#diff-b').inputValue(), TEXT_B);
    for (const [l, h] of inductionHeads) {
      assert.equal(await again.locator(`.ablate-head[data-layer="${l}"][data-head="${h}"]`).getAttribute('aria-pressed'), 'true');
    }
    // "Show the clean run" is in a link as shows=clean: the heads stay chosen, no banner.
    await again.goto(`${server.url}#text=${encodeURIComponent(TEXT)}&ablate=${heads}&shows=clean`);
    await ready(again, TEXT);
    await again.waitForFunction(() => document.querySelector('.ablate-show-choice[data-show=clean]')
      ?.getAttribute('aria-pressed') === 'true', null, { timeout: 60_000 });
    await again.locator('[data-testid=ablation-result]').waitFor({ timeout: 60_000 });
    await again.waitForFunction(() => !document.querySelector('[data-testid=intervened-banner]'), null,
      { timeout: 30_000 });
    // A bad link value: a message, the rest restored, no panic.
    await again.goto(`${server.url}#text=hi&find=wobble&ablate=9.x`);
    await again.locator('[data-testid=link-note]').waitFor({ timeout: 30_000 });
    assert.match(await again.locator('[data-testid=link-note]').innerText(), /find=wobble/);
    assert.deepEqual(errors.filter((e) => !/WebGPU|adapter/i.test(e)), [], 'no page errors');
  } finally {
    await browser.close();
  }
}

test('which heads matter, on WebGPU (SwiftShader)', { timeout: 600_000 }, () => checkPage(true, 'gpu'));
test('which heads matter, on the CPU fallback', { timeout: 600_000 }, () => checkPage(false, 'cpu'));

test('the new panels fit a phone', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await openApp(browser, server.url, { width: 360, height: 800 });
    await typeText(page, TEXT);
    await ready(page, TEXT);
    await page.locator('#diff-b').fill(TEXT_B);
    for (const panel of ['.finder-panel', '.lens-panel', '.ablation-panel', '.diff-panel']) {
      await page.locator(panel).scrollIntoViewIfNeeded();
    }
    await page.locator('[data-testid=diff-figure]').waitFor({ timeout: 30_000 });
    await page.locator('[data-testid=lens-table]').waitFor({ timeout: 30_000 });
    await page.locator('.finder-template[data-template=painted]').click();
    await page.waitForTimeout(300);
    await screenshot(page, 'heads-phone.png');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling at 360 px (overflow ${overflow}px)`);
  } finally {
    await browser.close();
  }
});
