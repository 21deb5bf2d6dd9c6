// What one keystroke costs in the page, part by part (issue 19): the page's
// own breakdown from its test hook (`keystroke`: frame wait, tokenize,
// forward, draws, reads, other, total), median over many keystrokes that each
// append (or delete) one character at the end of a text of about T tokens.
//
//   node tools/bench_keystroke.mjs [--gpu] [--t 16,128] [--keys 21]
//
// Needs a release build in dist/ (`trunk build --release`) and the e2e
// tests' node modules (`cd tests/e2e && npm ci`). Without --gpu the page runs
// its CPU engine (WebGPU off), the path every browser without WebGPU takes.
// The goal: total − frame wait ≤ 1.5 × the engine's own time (tokenize +
// forward). This is a benchmark, not a test: the figures depend on the machine.
// The last columns say how much of `other` is the browser's own frame
// (style, layout, paint, compositing), from Chromium's trace, and, for
// scale, the engine's time for a full run of the same text (nothing reused).
// A last line gives the browser's floor: the same keystrokes in a bare page
// (a text box and one line of text that follows it, nothing else), timed as
// the page times its own (from the frame that reacts to the input to the
// first task after that frame): what any page pays per keystroke here.
import { serveDist, launch, openApp, median } from '../tests/e2e/harness.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const gpu = process.argv.includes('--gpu');
const sizes = arg('--t', '16,128').split(',').map(Number);
const keys = Number(arg('--keys', '21'));
const fmt = (v) => v.toFixed(2).padStart(8);

/** The browser's own work for each keystroke's frame (Chromium's trace of
 * the page's main thread, from each keydown to the next): style and layout,
 * and paint through the compositor commit, medians in ms. */
async function renderPerKeystroke(cdp) {
  const done = new Promise((resolve) => cdp.once('Tracing.tracingComplete', resolve));
  await cdp.send('Tracing.end');
  const { stream } = await done;
  let data = '';
  for (;;) {
    const chunk = await cdp.send('IO.read', { handle: stream });
    data += chunk.data;
    if (chunk.eof) break;
  }
  const parsed = JSON.parse(data);
  const events = parsed.traceEvents || parsed;
  const main = events.find((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain');
  const mine = events.filter((e) => main && e.pid === main.pid && e.tid === main.tid && e.ph === 'X')
    .sort((a, b) => a.ts - b.ts);
  const keydowns = mine.filter((e) => e.name === 'EventDispatch' && e.args?.data?.type === 'keydown');
  // Events nest (a Paint inside a Paint): each span of time is counted once.
  const sum = (names, from, to) => {
    let total = 0;
    let until = -Infinity;
    for (const e of mine) {
      if (e.ts < from || e.ts >= to || !names.includes(e.name) || e.ts < until) continue;
      total += e.dur / 1000;
      until = e.ts + e.dur;
    }
    return total;
  };
  const per = keydowns.map((k, i) => {
    const end = keydowns[i + 1]?.ts ?? k.ts + 200_000;
    return { layout: sum(['UpdateLayoutTree', 'Layout'], k.ts, end), paint: sum(['PrePaint', 'Paint', 'Layerize', 'Commit'], k.ts, end) };
  });
  return { layout: median(per.map((p) => p.layout)), paint: median(per.map((p) => p.paint)) };
}

/** The browser's own cost of a keystroke's frame in a bare page: from the
 * animation frame that reacts to the input (it writes the text's length into
 * the page, as little as a page can show) to the first task after that
 * frame (`scheduler.postTask`, as the page's `after_this_frame`), medians in ms. */
async function browserFloor(browser) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.setContent(`<textarea id="t" rows="4" cols="60">the cat sat on a mat</textarea><p id="o"></p><script>
    window.frames_ = [];
    const box = document.getElementById('t');
    box.addEventListener('input', () => requestAnimationFrame(() => {
      const start = performance.now();
      document.getElementById('o').textContent = box.value.length + ' characters';
      scheduler.postTask(() => window.frames_.push(performance.now() - start), { priority: 'user-blocking' });
    }));
  </script>`);
  await page.focus('#t');
  await page.press('#t', 'End');
  for (let k = 0; k < keys; k++) {
    await page.keyboard.press(k % 2 ? 'Backspace' : 'x');
    await page.waitForTimeout(50);
  }
  const frames = await page.evaluate(() => window.frames_);
  await page.close();
  return median(frames);
}

const server = await serveDist();
const browser = await launch({ webgpu: gpu });
try {
  const { page, errors } = await openApp(browser, server.url);
  await page.waitForFunction(() => window.attnscope.state().runs > 0, null, { timeout: 60_000 });
  const backend = (await page.evaluate(() => window.attnscope.state())).backend;
  console.log(`backend: ${backend}; ${keys} keystrokes per size, medians in ms`);
  console.log(`${'T'.padStart(5)} ${['frame', 'tokenize', 'forward', 'draws', 'reads', 'other', 'total'].map((h) => h.padStart(8)).join(' ')}  (total − frame) / engine`);
  const box = page.locator('#text-input');
  const fullEngine = {};
  for (const t of sizes) {
    // A text of at most t − 1 tokens (the page's own count, inside the
    // context), so each keystroke appends a character (often a new last
    // token) or deletes it, and every keystroke changes what the model reads.
    const words = 'the cat sat on a mat and then it ran off to see a dog by the door '.split(' ').filter(Boolean);
    const textOf = (n) => Array.from({ length: n }, (_, i) => words[i % words.length]).join(' ');
    const tokensOf = async (text) => {
      await box.fill(text);
      await page.waitForFunction((s) => window.attnscope.state().text === s && window.attnscope.state().runs > 0, text);
      await page.waitForTimeout(100);
      const st = await page.evaluate(() => window.attnscope.state());
      return st.inputError ? Infinity : st.tokens.length;
    };
    let [lo, hi] = [1, t];
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if ((await tokensOf(textOf(mid))) <= t - 1) lo = mid; else hi = mid - 1;
    }
    const text = textOf(lo);
    // For scale: the engine's time for the whole text (its first word
    // replaced, so nothing is reused), median of 3, as the page times it.
    const fulls = [];
    for (const first of ['a', 'the', 'a']) {
      await page.evaluate(() => { window.fullDone = new Promise((resolve) => { window.attnscope.onKeystroke = resolve; }); });
      await box.fill([first, ...text.split(' ').slice(1)].join(' '));
      const k = await page.evaluate(() => window.fullDone);
      fulls.push(k.tokenize + k.forward);
    }
    fullEngine[t] = median(fulls);
    await tokensOf(text);
    await page.waitForTimeout(300);
    await box.focus();
    await box.press('End');
    const rows = [];
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Tracing.start', { categories: 'devtools.timeline', transferMode: 'ReturnAsStream' });
    for (let k = 0; k < keys; k++) {
      // The page calls onKeystroke with the breakdown: nothing polls the page
      // (its state as JSON is not free and would land inside the keystrokes measured).
      await page.evaluate(() => {
        window.keystrokeDone = new Promise((resolve) => { window.attnscope.onKeystroke = resolve; });
      });
      await box.press(k % 2 ? 'Backspace' : 'x');
      rows.push(await page.evaluate(() => Promise.race([window.keystrokeDone,
        new Promise((_, fail) => setTimeout(() => fail(new Error('no keystroke breakdown in 60 s')), 60_000))])));
      await page.waitForTimeout(50);
    }
    const render = await renderPerKeystroke(cdp);
    const tokens = (await page.evaluate(() => window.attnscope.state().gpuTokens));
    const m = Object.fromEntries(['frameWait', 'tokenize', 'forward', 'draws', 'reads', 'other', 'total'].map((k) => [k, median(rows.map((r) => r[k]))]));
    const ratio = median(rows.map((r) => (r.total - r.frameWait) / Math.max(r.tokenize + r.forward, 1e-3)));
    console.log(`${String(tokens).padStart(5)} ${fmt(m.frameWait)} ${fmt(m.tokenize)} ${fmt(m.forward)} ${fmt(m.draws)} ${fmt(m.reads)} ${fmt(m.other)} ${fmt(m.total)}  ${ratio.toFixed(2)}×` +
      `   of other, the browser's frame: style + layout ${render.layout.toFixed(2)}, paint + composite ${render.paint.toFixed(2)}` +
      `; a full run's engine time ${fullEngine[t].toFixed(2)} (keystroke − frame = ${(median(rows.map((r) => r.total - r.frameWait)) / fullEngine[t]).toFixed(2)}× it)`);
  }
  const floor = await browserFloor(browser);
  console.log(`the browser's floor, a bare page's keystroke from its frame to the next task: ${floor.toFixed(2)} ms` +
    ` (the goal, 1.5 × the engine's time, is below it wherever the engine takes under ${(floor / 1.5).toFixed(2)} ms)`);
  if (errors.length) console.log('page errors:', errors);
} finally {
  await browser.close();
  await server.close();
}
