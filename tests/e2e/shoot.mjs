// Ad-hoc screenshots while working on the page (not a test):
//   ATTNSCOPE_DIST=dir node tests/e2e/shoot.mjs OUTDIR [--cpu] [--models]
// --models: the model chooser, a plan to confirm and a download under way,
// desktop and phone, against the tests' hub (tools/make_page_models.py).
import { serveDist, launch, openApp, ROOT } from './harness.mjs';
import { startHub } from './hub_server.mjs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const out = process.argv[2] || '/tmp/shots';
const cpu = process.argv.includes('--cpu');
if (process.argv.includes('--models')) {
  await shootModels();
  process.exit(0);
}
const server = await serveDist();
const browser = await launch({ webgpu: !cpu });
try {
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

async function shootModels() {
  const models = execFileSync('python3', [path.join(ROOT, 'tools/make_page_models.py')]).toString().trim();
  const server = await serveDist();
  const hub = await startHub(models);
  const browser = await launch({ webgpu: !cpu });
  try {
    for (const [device, viewport] of [['desktop', { width: 1280, height: 900 }], ['phone', { width: 390, height: 844 }]]) {
      const { page, errors } = await openApp(browser, `${server.url}?hub=${encodeURIComponent(hub.url)}`, viewport);
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
      console.log(device, 'errors', errors);
      await page.close();
    }
  } finally {
    await browser.close();
    await hub.close();
    await server.close();
  }
}
