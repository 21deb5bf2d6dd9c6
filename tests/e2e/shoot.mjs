// Ad-hoc screenshots while working on the page (not a test):
//   ATTNSCOPE_DIST=dir node tests/e2e/shoot.mjs OUTDIR [--cpu] [--models | --smollm2 | --smollm2-shape | --smollm2-cpu | --heads]
// --models: the model chooser, a plan to confirm and a download under way,
// desktop and phone, against the tests' hub (tools/make_page_models.py).
// --smollm2-shape: the model grid and the Positions panel of a random
// Llama of SmolLM2's grid (30 layers × 9 heads on 3 KV heads, random_llama.mjs)
// on a desktop and a phone (grid-30x9-*.png, positions-rope-*.png).
// --smollm2-cpu: SmolLM2-135M from the tests' hub on the CPU (after
// tools/get_smollm2.py): the logit lens while it is read and when done, and
// the dilution panel stopped at its memory bound, desktop and phone
// (smollm2-cpu-*.png).
// --smollm2: SmolLM2-135M-Instruct itself from the tests' hub (after
// tools/get_smollm2.py), on WebGPU (or --cpu): its model grid and its
// Positions panel, desktop and phone (smollm2-grid-*.png, smollm2-positions-*.png).
// --heads: the default model's induction heads ablated on a repeated
// sequence (the banner and the attention panel showing the ablated run, the
// ablation panel after a sweep) and the two-prompt diff (heads-*.png).
import { serveDist, launch, openApp, ROOT } from './harness.mjs';
import { startHub } from './hub_server.mjs';
import { execFileSync } from 'node:child_process';
import { randomLlama, routeModel, SMOLLM2_GRID } from './random_llama.mjs';
import path from 'node:path';

const out = process.argv[2] || '/tmp/shots';
// SmolLM2 as the tests' hub serves it (tools/get_smollm2.py).
const SMOLLM2 = 'HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf';
const cpu = process.argv.includes('--cpu');
if (process.argv.includes('--models')) {
  await shootModels();
  process.exit(0);
}
if (process.argv.includes('--smollm2')) {
  await shootSmolLM2();
  process.exit(0);
}
if (process.argv.includes('--smollm2-cpu')) {
  await shootSmolLM2Cpu();
  process.exit(0);
}
const server = await serveDist();
const browser = await launch({ webgpu: !cpu });

/** The grid and the Positions panel of a 30 × 9 random Llama, on a desktop and a phone. */
async function shootSmolLM2Shape() {
  const files = randomLlama(SMOLLM2_GRID, { seed: 3 });
  for (const [name, viewport, scale] of [['desktop', { width: 1280, height: 900 }, 1], ['phone', { width: 390, height: 844 }, 2]]) {
    const context = await browser.newContext({ viewport, deviceScaleFactor: scale, serviceWorkers: 'block' });
    const page = await context.newPage();
    await routeModel(page, files);
    await page.goto(`${server.url}#text=${encodeURIComponent('Mr Darcy walked into the room, and Elizabeth looked at him.')}`);
    await page.waitForFunction(() => window.attnscope && window.attnscope.state().runs > 0, null, { timeout: 180_000 });
    // The sticky panel bar would sit over the top of an element's picture.
    await page.addStyleTag({ content: '.panel-nav { position: static !important; }' });
    for (const [panel, file] of [['.model-panel', 'grid-30x9'], ['.positions-panel', 'positions-rope']]) {
      const el = page.locator(panel);
      await el.scrollIntoViewIfNeeded();
      await page.waitForTimeout(800);
      await el.screenshot({ path: path.join(out, `${file}-${name}.png`) });
    }
    await context.close();
  }
}

/** Ablation (the page showing the ablated run, a finished sweep) and the diff, desktop width. */
async function shootHeads() {
  const words = ' lily rose vast moon drip clay fern oak jazz quip';
  const text = `${words}${words} lily rose vast`;
  const b = `${words}${words} lily rose oak`;
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, serviceWorkers: 'block' });
  const page = await context.newPage();
  await page.goto(`${server.url}#text=${encodeURIComponent(text)}&layer=1&head=1&ablate=1.1,1.2&diff=${encodeURIComponent(b)}`);
  await page.waitForFunction(() => window.attnscope && window.attnscope.state().runs > 0, null, { timeout: 180_000 });
  await page.addStyleTag({ content: '.panel-nav { position: static !important; }' });
  await page.locator('[data-testid=intervened-banner]').waitFor({ timeout: 60_000 });
  await page.waitForTimeout(800);
  await page.screenshot({ path: path.join(out, 'heads-ablated-page.png'), clip: { x: 0, y: 0, width: 1280, height: 900 } });
  await page.locator('.ablation-panel').scrollIntoViewIfNeeded();
  await page.locator('.sweep-button').click();
  await page.waitForFunction(() => {
    const s = document.querySelector('[data-testid=sweep-status]');
    return s && s.dataset.done === s.dataset.total;
  }, null, { timeout: 120_000 });
  await page.waitForTimeout(500);
  await page.locator('.ablation-panel').screenshot({ path: path.join(out, 'heads-ablation.png') });
  await page.locator('.diff-panel').scrollIntoViewIfNeeded();
  await page.locator('[data-testid=diff-figure]').waitFor({ timeout: 60_000 });
  await page.waitForTimeout(800);
  await page.locator('.diff-panel').screenshot({ path: path.join(out, 'heads-diff.png') });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(800);
  await page.screenshot({ path: path.join(out, 'heads-ablated-phone.png') });
  await context.close();
}

try {
  if (process.argv.includes('--heads')) {
    await shootHeads();
    process.exit(0);
  }
  if (process.argv.includes('--smollm2-shape')) {
    await shootSmolLM2Shape();
    process.exit(0);
  }
  const { page, errors } = await openApp(browser, server.url);
  await page.waitForFunction(() => window.attnscope.state().renders > 0, null, { timeout: 60_000 });
  await page.waitForTimeout(500);
  await page.screenshot({ path: path.join(out, 'desktop.png'), fullPage: true });
  await page.locator('[data-stage=raw]').click();
  await page.waitForTimeout(500);
  await page.locator('canvas.heatmap-canvas:not(.off)').scrollIntoViewIfNeeded();
  const box = await page.locator('canvas.heatmap-canvas:not(.off)').boundingBox();
  await page.mouse.click(box.x + box.width * 0.6, box.y + box.height * 0.8);
  await page.waitForTimeout(500);
  await page.screenshot({ path: path.join(out, 'raw.png'), fullPage: true });
  await page.locator('[data-stage=q]').click();
  await page.waitForTimeout(500);
  await page.screenshot({ path: path.join(out, 'q.png'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => window.dispatchEvent(new Event('resize')));
  await page.waitForTimeout(500);
  await page.screenshot({ path: path.join(out, 'phone.png'), fullPage: true });
  console.log(JSON.stringify(await page.evaluate(() => window.attnscope.state()), null, 0).slice(0, 1500));
  console.log('errors', errors);
} finally {
  await browser.close();
  await server.close();
}

/** Runs `shoot(page, device)` on a desktop and a phone, each page opened at `url(server, hub)`,
 * against the tests' hub (tools/make_page_models.py); logs each page's errors. */
async function onDevicesWithHub(webgpu, url, shoot) {
  const models = execFileSync('python3', [path.join(ROOT, 'tools/make_page_models.py')]).toString().trim();
  const server = await serveDist();
  const hub = await startHub(models);
  const browser = await launch({ webgpu });
  try {
    for (const [device, viewport] of [['desktop', { width: 1280, height: 900 }], ['phone', { width: 390, height: 844 }]]) {
      const { page, errors } = await openApp(browser, url(server, hub), viewport);
      await shoot(page, device, hub);
      console.log(device, 'errors', errors);
      await page.close();
    }
  } finally {
    await browser.close();
    await hub.close();
    await server.close();
  }
}

async function shootModels() {
  await onDevicesWithHub(!cpu, (server, hub) => `${server.url}?hub=${encodeURIComponent(hub.url)}`, async (page, device, hub) => {
    await page.click('[data-testid=model-button]');
    await page.fill('[data-testid=model-id]', 'test/llama-tiny-sharded');
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(out, `chooser-${device}.png`) });
    hub.set({ bytesPerSecond: 150_000 });
    await page.click('[data-testid=model-open]');
    await page.waitForFunction(() => Number((document.querySelector('[data-testid=model-progress] progress') || {}).value) > 300_000,
      null, { timeout: 60_000 });
    await page.click('[data-testid=model-progress] summary');
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(out, `download-${device}.png`) });
    await page.click('[data-testid=model-cancel]');
    hub.set({ bytesPerSecond: 0 });
    await page.locator('[data-testid=model-message]').waitFor();
    await page.click('[data-testid=model-button]');
    await page.fill('[data-testid=model-id]', `${hub.url}/files/test/gpt2-small-random`);
    await page.click('[data-testid=model-open]');
    await page.locator('[data-testid=model-plan]').waitFor({ timeout: 60_000 });
    await page.screenshot({ path: path.join(out, `plan-${device}.png`) });
  });
}

/** Opens SmolLM2 by its hub name through the chooser and waits for its first run. */
async function openSmolLM2(page) {
  await page.click('[data-testid=model-button]');
  await page.fill('[data-testid=model-id]', SMOLLM2);
  await page.click('[data-testid=model-open]');
  await page.locator('[data-testid=model-download]').click({ timeout: 60_000 });
  await page.waitForFunction((k) => {
    const s = window.attnscope?.state();
    return !!s && s.modelKey === k && s.runs > 0 && s.phase === 'ready' && !document.querySelector('[data-testid=model-progress]');
  }, SMOLLM2, { timeout: 400_000 });
  // The sticky panel bar would sit over the top of an element's picture.
  await page.addStyleTag({ content: '.panel-nav { position: static !important; }' });
}

/** SmolLM2's model grid (30 × 9 heads on 3 KV heads) and Positions panel, desktop and phone. */
async function shootSmolLM2() {
  const text = encodeURIComponent('The capital of France is Paris, and the capital of Italy is Rome.');
  const url = (server, hub) => `${server.url}?${cpu ? 'backend=cpu&' : ''}hub=${encodeURIComponent(hub.url)}#text=${text}`;
  await onDevicesWithHub(!cpu, url, async (page, device) => {
    await openSmolLM2(page);
    for (const [panel, file] of [['.model-panel', 'smollm2-grid'], ['.positions-panel', 'smollm2-positions']]) {
      const el = page.locator(panel);
      await el.scrollIntoViewIfNeeded();
      await page.waitForTimeout(1500);
      await el.screenshot({ path: path.join(out, `${file}-${device}.png`) });
    }
  });
}

/** SmolLM2 on the CPU: the lens being read and read, and the dilution panel, desktop and phone. */
async function shootSmolLM2Cpu() {
  const text = encodeURIComponent('The capital of France is Paris, and the capital of Italy is');
  const url = (server, hub) => `${server.url}?backend=cpu&hub=${encodeURIComponent(hub.url)}#text=${text}`;
  await onDevicesWithHub(false, url, async (page, device) => {
    await openSmolLM2(page);
    const lens = page.locator('.lens-panel');
    await lens.scrollIntoViewIfNeeded();
    await page.locator('[data-testid=lens-progress]').waitFor({ timeout: 60_000 });
    await page.waitForFunction(() => /(\d+) of/.exec(document.querySelector('[data-testid=lens-progress]')?.innerText ?? '')?.[1] > 10,
      null, { timeout: 60_000 }).catch(() => {});
    await lens.screenshot({ path: path.join(out, `smollm2-cpu-lens-reading-${device}.png`) });
    await page.locator('[data-testid=lens-table]').waitFor({ timeout: 120_000 });
    await page.waitForTimeout(500);
    await lens.screenshot({ path: path.join(out, `smollm2-cpu-lens-${device}.png`) });
    const dilution = page.locator('.dilution-panel');
    await dilution.scrollIntoViewIfNeeded();
    await page.locator('.dilution-run').click();
    await page.locator('[data-testid=dilution-note]').waitFor({ timeout: 300_000 });
    await page.waitForTimeout(500);
    await dilution.screenshot({ path: path.join(out, `smollm2-cpu-dilution-${device}.png`) });
  });
}

