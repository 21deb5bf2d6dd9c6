// First-visit bytes: opens the built app (dist/, `trunk build --release`) in
// headless Chromium, waits until the model is loaded and the page is ready
// for the first keystroke, and sums gzip -9 of every file the page fetched
// up to then (what a server compressing at the highest level would send).
// Budget: 3 MB (issue 19).
//
//   (cd tests/e2e && npm ci) && node tools/first_visit.mjs [--webgpu]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { DIST, launch, openApp, serveDist } from '../tests/e2e/harness.mjs';

const BUDGET = 3_000_000;
const server = await serveDist();
const browser = await launch({ webgpu: process.argv.includes('--webgpu') });
try {
  const { page } = await openApp(browser, server.url);
  await page.waitForTimeout(1000); // let late requests (the service worker) land
  const seen = [...new Set(server.requests.map((p) => (p.endsWith('/') ? p + 'index.html' : p)))];
  let raw = 0, gz = 0;
  console.log(`${'file'.padEnd(48)} ${'bytes'.padStart(10)} ${'gzip -9'.padStart(10)}`);
  for (const p of seen) {
    let body;
    try { body = readFileSync(path.join(DIST, p)); } catch { continue; }
    const z = gzipSync(body, { level: 9 }).length;
    raw += body.length; gz += z;
    console.log(`${p.padEnd(48)} ${String(body.length).padStart(10)} ${String(z).padStart(10)}`);
  }
  console.log(`${'total'.padEnd(48)} ${String(raw).padStart(10)} ${String(gz).padStart(10)}  (budget ${BUDGET}: ${gz <= BUDGET ? 'within' : 'OVER'})`);
  process.exitCode = gz <= BUDGET ? 0 : 1;
} finally {
  await browser.close();
  await server.close();
}
