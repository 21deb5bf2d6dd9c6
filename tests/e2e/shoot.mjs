// Ad-hoc screenshots while working on the page (not a test):
//   ATTNSCOPE_DIST=dir node tests/e2e/shoot.mjs OUTDIR [--cpu]
import { serveDist, launch, openApp } from './harness.mjs';
import path from 'node:path';

const out = process.argv[2] || '/tmp/shots';
const cpu = process.argv.includes('--cpu');
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
