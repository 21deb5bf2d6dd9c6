// The page under a storm (issue 18): 2,000 random edits (300 on WebGPU) (inserts, deletes,
// pastes of random Unicode with lone surrogates, right-to-left text and
// combining marks, jumps past the context) and random clicks on stages,
// heads, layers, masks and the panel bar, on both backends, and a GPU lost
// in the middle of one storm. Afterwards: no page error, the page is ready,
// and the shown matrix equals `attnscope trace` of the text the page ran.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serveDist, launch, openApp, cliTrace, traceMatrix, maxAbsDiff, MODEL_CONFIG } from './harness.mjs';

let server;
before(async () => { server = await serveDist(); });
after(async () => { await server.close(); });

const EDITS = 2000;
const CLICKS = 300;
// On WebGPU through SwiftShader (a CPU emulation) every run costs ~50× the
// CPU engine's, so the GPU storms are shorter: still hundreds of runs
// superseding one another (the GPU's own paths: runs, draws, reads, a
// lost device), in a small part of CI's time; the CPU storm is the long one.
const GPU_EDITS = 300;
const GPU_CLICKS = 50;

/** Runs the storm in the page (seeded), yielding a frame every few actions; returns what it did. */
async function storm(page, seed, { loseGpuAt = -1, edits = EDITS, clicks = CLICKS } = {}) {
  return page.evaluate(async ({ seed, edits, clicks, loseGpuAt, nPositions }) => {
    let s = seed >>> 0;
    const rand = () => { s ^= s << 13; s >>>= 0; s ^= s >> 17; s ^= s << 5; s >>>= 0; return s / 4294967296; };
    const pick = (xs) => xs[Math.floor(rand() * xs.length)];
    const pieces = ['the ', 'cat ', 'Queen ', ' ', '\n', 'é', 'e\u0301', '\u05e9\u05dc\u05d5\u05dd', 'مرحبا', '日本語',
      '🙂', '\ud800', '\udfff', 'x\ud83d', '\u202e', '\u0001', '<b>', '&amp;', '%', '#', '\uffff', '\t'];
    const area = document.querySelector('#text-input');
    const setText = (text) => {
      area.value = text;
      area.dispatchEvent(new Event('input', { bubbles: true }));
    };
    const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
    const counts = { inserts: 0, deletes: 0, pastes: 0, jumps: 0, clicks: 0 };
    let clicked = 0;
    for (let i = 0; i < edits; i++) {
      const text = area.value;
      const at = Math.floor(rand() * (text.length + 1));
      const r = rand();
      if (r < 0.45) {
        setText(text.slice(0, at) + pick(pieces) + text.slice(at));
        counts.inserts++;
      } else if (r < 0.75) {
        const n = 1 + Math.floor(rand() * 4);
        setText(text.slice(0, at) + text.slice(at + n));
        counts.deletes++;
      } else if (r < 0.97) {
        let paste = '';
        for (let k = 0, n = 1 + Math.floor(rand() * 12); k < n; k++) {
          paste += rand() < 0.5 ? pick(pieces) : String.fromCharCode(1 + Math.floor(rand() * 0xfffe));
        }
        setText(text.slice(0, at) + paste + text.slice(at));
        counts.pastes++;
      } else {
        setText('the cat sat on the mat '.repeat(Math.ceil(nPositions / 4))); // far past the context
        counts.jumps++;
      }
      if (i % 7 === 0 && clicked < clicks) {
        const targets = [...document.querySelectorAll(
          '.stage-button, .head-button, .layer-button, .mask-button, .nav-link, .view-head, .nav')]
          .filter((b) => !b.disabled);
        const target = pick(targets);
        if (target) { target.click(); clicked++; counts.clicks++; }
      }
      if (i === loseGpuAt) window.attnscope.loseGpu();
      if (i % 10 === 0) await frame();
    }
    // End inside the context (30 UTF-16 units are at most 90 bytes, so at most 90
    // byte-level tokens), so the last run shows the text.
    setText(`${area.value.slice(0, 30)} end.`);
    await frame();
    return counts;
  }, { seed, edits, clicks, loseGpuAt, nPositions: MODEL_CONFIG.n_positions });
}

/** After the storm: ready, and the shown matrix is the CLI's for the text the page ran. */
async function settledAgainstCli(page, what) {
  await page.waitForFunction(() => {
    const s = window.attnscope.state();
    return s.phase === 'ready' && s.inputError === null && s.gpuTokens === s.tokens.length && s.gpuTokens > 0;
  }, null, { timeout: 120_000 });
  await page.waitForTimeout(300); // the last frame's draw
  const snap = await page.evaluate(() => window.attnscope.snapshot());
  const mask = snap.mask;
  const trace = cliTrace(snap.text, mask, { quiet: true });
  assert.equal(trace.tokens.length, snap.gpuTokens, `${what}: the same tokens as the CLI`);
  const diff = maxAbsDiff(snap.matrix, traceMatrix(trace, snap.layer, snap.head, snap.stage), what);
  assert.ok(diff <= 1e-4, `${what}: max |page − CLI| = ${diff} (${snap.stage} L${snap.layer}H${snap.head} ${mask})`);
  return snap;
}

for (const webgpu of [true, false]) {
  const [edits, clicks] = webgpu ? [GPU_EDITS, GPU_CLICKS] : [EDITS, CLICKS];
  test(`a storm of ${edits} edits and ${clicks} clicks on the ${webgpu ? 'GPU' : 'CPU'} backend: no error, the CLI's numbers`, { timeout: 600_000 }, async () => {
    const browser = await launch({ webgpu });
    try {
      const { page, errors } = await openApp(browser, server.url);
      await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
      const counts = await storm(page, webgpu ? 18 : 81, { edits, clicks });
      console.log(`storm (${webgpu ? 'GPU' : 'CPU'}): ${JSON.stringify(counts)}, page errors ${errors.length}`);
      const snap = await settledAgainstCli(page, `storm on ${webgpu ? 'the GPU' : 'the CPU'}`);
      assert.equal(snap.gpu, webgpu, 'the backend is the one it started on');
      assert.deepEqual(errors, [], 'no page error');
    } finally {
      await browser.close();
    }
  });
}

test('a storm with the GPU lost in the middle: the page carries on with the CPU and the CLI\'s numbers', { timeout: 600_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, errors } = await openApp(browser, server.url);
    await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
    const counts = await storm(page, 7, { loseGpuAt: GPU_EDITS / 2, edits: GPU_EDITS, clicks: GPU_CLICKS });
    console.log(`storm with a lost GPU: ${JSON.stringify(counts)}, page errors ${errors.length}`);
    const snap = await settledAgainstCli(page, 'storm with a lost GPU');
    assert.equal(snap.gpu, false, 'on the CPU after the loss');
    assert.ok(snap.gpuError, 'the page says why');
    // The console says the device was lost and the page moved to the CPU; nothing else.
    const unexpected = errors.filter((e) => !/GPU device lost|switching to the CPU backend/.test(e));
    assert.deepEqual(unexpected, [], 'no page error');
  } finally {
    await browser.close();
  }
});
