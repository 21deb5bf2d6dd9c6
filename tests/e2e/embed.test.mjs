// Embedding (issue 8, part 2): www/embed.js + <attnscope-view>, the shipped
// lesson page with three widgets showing the model's own numbers from one
// model download, and attributes that are checked, named and never run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serveDist, launch, cliTrace, traceMatrix, maxAbsDiff, screenshot } from './harness.mjs';

let server;
before(async () => { server = await serveDist(); });
after(async () => { await server.close(); });

/** The frames of a page's widgets, once each has drawn (in document order of their iframes). */
async function widgetFrames(page, count) {
  await page.waitForFunction((n) => document.querySelectorAll('attnscope-view').length === n, count);
  const frames = [];
  for (let i = 0; i < count; i++) {
    const handle = await page.evaluateHandle((k) => document.querySelectorAll('attnscope-view')[k]
      .shadowRoot.querySelector('iframe'), i);
    let frame = null;
    for (let tries = 0; !frame && tries < 200; tries++) {
      frame = await handle.asElement().contentFrame();
      if (!frame) await page.waitForTimeout(100);
    }
    assert.ok(frame, `widget ${i} has a frame`);
    await frame.waitForFunction(() => {
      const s = window.attnscope && window.attnscope.state();
      return s && s.phase === 'ready' && s.runs > 0 && s.renders > 0;
    }, null, { timeout: 120_000 });
    frames.push(frame);
  }
  return frames;
}

test('the lesson page shows four widgets with the model\'s numbers from one model download', { timeout: 400_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const before = server.requests.length;
    await page.goto(`${server.url}examples/lesson.html`);
    const [scores, softmax, heads, diff] = await widgetFrames(page, 4);
    const text = 'The cat sat on the mat because it was tired.';

    const s1 = await scores.evaluate(() => window.attnscope.snapshot());
    assert.deepEqual([s1.stage, s1.layer, s1.head, s1.mask, s1.text], ['raw', 0, 0, 'bidirectional', text]);
    assert.ok(maxAbsDiff(s1.matrix, traceMatrix(cliTrace(text, 'bidirectional', { quiet: true }), 0, 0, 'raw'),
      'scores widget') <= 1e-3);

    const causal = cliTrace(text, 'causal', { quiet: true });
    const s2 = await softmax.evaluate(() => window.attnscope.snapshot());
    assert.deepEqual([s2.stage, s2.layer, s2.head, s2.mask], ['weights', 1, 2, 'causal']);
    assert.ok(maxAbsDiff(s2.matrix, traceMatrix(causal, 1, 2, 'weights'), 'softmax widget') <= 1e-4);

    const s3 = await heads.evaluate(() => window.attnscope.snapshot());
    assert.equal(s3.layer, 0);
    assert.ok(maxAbsDiff(s3.matrix, traceMatrix(causal, 0, s3.head, 'weights'), 'head view widget') <= 1e-4);
    // Each widget shows its one panel, and only it.
    const shown = async (frame, selector) => frame.locator(selector).first().isVisible();
    assert.ok(await shown(scores, '.attention-panel') && !(await shown(scores, '.head-view-panel')));
    assert.ok(await shown(heads, '.head-view-panel') && !(await shown(heads, '.attention-panel')));
    assert.ok(!(await shown(heads, '#text-input')), 'no text box in a widget');
    // A widget draws once it is on the lesson page's screen (below the fold it waits).
    await (await heads.frameElement()).scrollIntoViewIfNeeded();
    await heads.waitForFunction(() => document.querySelectorAll('.head-view-panel svg path, .head-view-panel svg line').length > 3,
      null, { timeout: 30_000 });
    const open = await scores.locator('.embed-open').getAttribute('href');
    assert.match(open, /^http:\/\/127\.0\.0\.1:\d+\/#text=The%20cat/, 'the open link goes to the full page');
    assert.doesNotMatch(open, /embed=1/);

    // The diff widget: A − B of layer 1 head 2's weights (the figure's largest |A − B| against the CLI), and
    // the next token's change; both prompts shown as text.
    assert.ok(await shown(diff, '.diff-panel') && !(await shown(diff, '.attention-panel')));
    await diff.waitForSelector('[data-testid=diff-figure]', { timeout: 60_000 });
    const textB = 'The cat sat on the bed because it was tired.';
    const [wa, wb] = [causal, cliTrace(textB, 'causal', { quiet: true })].map((tr) => traceMatrix(tr, 1, 2, 'weights'));
    let span = 0;
    wa.forEach((row, i) => row.forEach((x, j) => { if (Number.isFinite(x) && Number.isFinite(wb[i][j])) span = Math.max(span, Math.abs(x - wb[i][j])); }));
    const shownSpan = Number(await diff.locator('[data-testid=diff-figure]').getAttribute('data-span'));
    assert.ok(span > 0.01 && Math.abs(shownSpan - span) <= 1e-4, `largest |A − B| ${shownSpan} vs CLI ${span}`);
    assert.ok(await diff.locator('[data-testid=diff-next] tbody tr').count() > 0, 'the next-token change is listed');
    assert.match(await diff.locator('[data-testid=diff-prompts]').innerText(), /A: “The cat sat on the mat[^]*B: “The cat sat on the bed/);
    assert.ok(!(await shown(diff, '#diff-b')), 'no text box in the widget');
    assert.match(await diff.locator('[data-testid=embed-title]').innerText(), /A − B · Softmax weights · layer 1 · head 2/);

    const downloads = server.requests.slice(before).filter((p) => p.endsWith('model.safetensors.shuffled'));
    assert.equal(downloads.length, 1, `one model download for four widgets (${downloads.length})`);
    await screenshot(page, 'lesson-desktop.png');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(500);
    await screenshot(page, 'lesson-phone.png');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('bad widget attributes give visible messages and run no script', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
    const url = `${server.url}examples/evil.html`;
    await page.route(url, (route) => route.fulfill({ contentType: 'text/html', body: `<!doctype html>
      <script src="../embed.js"></script>
      <attnscope-view text="&lt;img src=x onerror=&quot;window.top.__pwned=1&quot;&gt;" head="-1" layer="999"
        view="nope" colour="red" height="300"></attnscope-view>` }));
    await page.goto(url);
    const [frame] = await widgetFrames(page, 1);
    const messages = await page.evaluate(() => document.querySelector('attnscope-view').shadowRoot
      .querySelector('.messages').innerText);
    assert.match(messages, /head="-1" is not a head number/);
    assert.match(messages, /view="nope" is not a view/);
    assert.match(messages, /"colour" is not an attnscope-view attribute/);
    // The layer is well formed but past the model: the widget's page says so.
    const note = await frame.locator('[data-testid=link-note]').innerText();
    assert.match(note, /layer 999/);
    const s = await frame.evaluate(() => window.attnscope.state());
    assert.equal(s.text, '<img src=x onerror="window.top.__pwned=1">', 'the text is text');
    assert.ok(s.layer < 4 && s.head === 0, `clamped to the model (layer ${s.layer}, head ${s.head})`);
    assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no script ran in the page');
    assert.equal(await frame.evaluate(() => window.__pwned), undefined, 'no script ran in the widget');
    assert.equal(await frame.locator('img[src=x]').count(), 0, 'no markup was injected');
    await screenshot(page, 'embed-bad-attributes.png');
  } finally {
    await browser.close();
  }
});

test('an embedded head view fits its frame at the default height: every token and line in view', { timeout: 300_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
    const url = `${server.url}examples/heads-default.html`;
    const text = 'Mr Darcy walked into the room, and Elizabeth looked at him without a word.';
    await page.route(url, (route) => route.fulfill({ contentType: 'text/html', body: `<!doctype html>
      <script src="../embed.js"></script>
      <attnscope-view text="${text}" view="heads" layer="0"></attnscope-view>` }));
    await page.goto(url);
    const [frame] = await widgetFrames(page, 1);
    await frame.waitForFunction(() => document.querySelectorAll('.head-view-panel svg line').length > 3, null,
      { timeout: 30_000 });
    const fit = await frame.evaluate(() => {
      const svg = document.querySelector('.head-view-svg').getBoundingClientRect();
      const labels = [...document.querySelectorAll('.head-view-svg .hv-label')].map((l) => l.getBoundingClientRect());
      return { height: window.innerHeight, width: window.innerWidth, svgBottom: svg.bottom, svgRight: svg.right,
        lowest: Math.max(...labels.map((r) => r.bottom)), labels: labels.length };
    });
    const tokens = (await frame.evaluate(() => window.attnscope.state())).tokens.length;
    assert.equal(fit.labels, 2 * tokens, 'a label on each side for every token');
    assert.ok(fit.svgBottom <= fit.height + 0.5, `the drawing ends inside the frame (${fit.svgBottom} > ${fit.height})`);
    assert.ok(fit.lowest <= fit.height + 0.5, `the last token's label is in view (${fit.lowest} > ${fit.height})`);
    assert.ok(fit.svgRight <= fit.width + 0.5, 'no sideways overflow');
    await screenshot(page, 'embed-heads-default.png');
  } finally {
    await browser.close();
  }
});
