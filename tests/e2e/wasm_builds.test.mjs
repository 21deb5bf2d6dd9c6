// The app's two wasm builds (issue 19): a release build ships the plain
// simd128 wasm and a relaxed-SIMD one whose matmuls use fused multiply-adds
// (tools/build_relaxed_simd.sh); index.html loads the relaxed one where the
// browser validates relaxed SIMD (this Chromium does), the plain one when
// asked to (`window.attnscopePlainSimd`, as a browser without relaxed SIMD
// would get it), and the plain one when the relaxed one fails to load or to
// compile. Each build's CPU engine equals the CLI's CPU reference.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serveDist, launch, typeText, cliTrace, traceMatrix, maxAbsDiff } from './harness.mjs';

const TEXT = 'The cat sat on the mat, and then the cat slept.';
let server;
before(async () => { server = await serveDist(); });
after(async () => { await server.close(); });

/** Opens the CPU page (no WebGPU) with `setup(page)` run first; resolves when the text has run. */
async function open(browser, setup) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  const warnings = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
    if (m.type() === 'warning') warnings.push(m.text());
  });
  await setup(page);
  await page.goto(`${server.url}#layer=1&head=2&stage=q`);
  await page.waitForFunction(() => window.attnscope && window.attnscope.state().phase === 'ready', null, { timeout: 120_000 });
  await typeText(page, TEXT);
  return { page, errors, warnings };
}

/** The shown stage (layer 1's Q: every matmul of layer 0 and layer 1's QKV) once `t` tokens have run. */
async function shownQ(page, t) {
  await page.waitForFunction(([text, t]) => {
    const s = window.attnscope.state();
    return s.text === text && s.gpuTokens === t && s.layer === 1 && s.head === 2 && s.stage === 'q' && s.renders > 0;
  }, [TEXT, t], { timeout: 60_000 });
  return page.evaluate(() => window.attnscope.snapshot());
}

/** The wasm files the page fetched. */
const wasmFetched = (page) => page.evaluate(() =>
  performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('.wasm')));

test('the relaxed-SIMD build runs where the browser has relaxed SIMD, the plain one otherwise or when the relaxed one fails; both equal the CPU reference', { timeout: 400_000 }, async () => {
  const reference = cliTrace(TEXT, 'causal', { quiet: true });
  const want = traceMatrix(reference, 1, 2, 'q');
  const t = reference.tokens.length;
  const browser = await launch({ webgpu: false });
  try {
    const cases = [
      { what: 'relaxed SIMD in the browser', setup: async () => {}, simd: 'simd128 + relaxed-simd', file: /_bg\.relaxed-simd\.wasm$/ },
      {
        what: 'plain build asked for', simd: 'simd128', file: /_bg\.wasm$/,
        setup: (page) => page.addInitScript(() => { window.attnscopePlainSimd = true; }),
      },
      {
        what: 'relaxed build missing (404)', simd: 'simd128', file: /_bg\.wasm$/, warned: true,
        setup: (page) => page.route(/relaxed-simd\.wasm$/, (route) => route.fulfill({ status: 404, body: 'not found' })),
      },
      {
        what: 'relaxed build corrupt', simd: 'simd128', file: /_bg\.wasm$/, warned: true,
        setup: (page) => page.route(/relaxed-simd\.wasm$/, (route) => route.fulfill({
          status: 200, contentType: 'application/wasm', body: Buffer.from([0, 97, 115, 109, 1, 0, 0, 0, 1, 255]),
        })),
      },
    ];
    const shown = [];
    for (const c of cases) {
      const { page, errors, warnings } = await open(browser, c.setup);
      const snap = await shownQ(page, t);
      assert.equal(snap.backend, 'CPU reference (wasm)', `${c.what}: the CPU engine runs`);
      assert.equal(snap.cpuSimd, c.simd, `${c.what}: the build that runs`);
      const fetched = await wasmFetched(page);
      assert.ok(fetched.some((p) => c.file.test(p)), `${c.what}: fetched ${fetched.join(', ')}`);
      if (c.simd === 'simd128' && !c.warned) {
        assert.ok(fetched.every((p) => !/relaxed/.test(p)), `${c.what}: the relaxed build is not fetched`);
      }
      if (c.warned) {
        assert.ok(warnings.some((w) => w.includes('relaxed-SIMD build did not load')), `${c.what}: the fallback is said in the console`);
      }
      const diff = maxAbsDiff(snap.matrix, want, c.what);
      assert.ok(diff <= 1e-4, `${c.what}: max |page − CPU reference| = ${diff}`);
      // The failed fetch of a missing file is a console error the browser writes itself.
      assert.deepEqual(errors.filter((e) => !/Failed to load resource/.test(e)), [], `${c.what}: no page errors`);
      shown.push(snap.matrix);
      await page.close();
    }
    // The two builds round differently (fused or not), so not bit for bit, but close.
    const between = maxAbsDiff(shown[0], shown[1], 'relaxed vs plain');
    console.log(`relaxed vs plain build, layer 1's Q: max |difference| ${between}`);
    assert.ok(between <= 1e-4, `relaxed vs plain: ${between}`);
  } finally {
    await browser.close();
  }
});
