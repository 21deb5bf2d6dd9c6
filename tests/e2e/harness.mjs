// Shared pieces of the browser tests: a static server for dist/, Chromium
// launched with the flags that make WebGPU work through SwiftShader, and the
// CLI's CPU trace to compare the page against.
import { createServer } from 'node:http';
import { readFile, mkdir } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DIST = process.env.ATTNSCOPE_DIST || path.join(ROOT, 'dist');
export const SCREENS = path.join(ROOT, 'target', 'e2e-screens');
export const CLI = process.env.ATTNSCOPE_CLI || path.join(ROOT, 'target', 'debug', 'attnscope');
/** The default model's config.json: the tests follow its shape (layers, heads, d). */
export const MODEL_CONFIG = JSON.parse(readFileSync(path.join(ROOT, 'www/models/default/config.json'), 'utf8'));

const QUIET_FLAGS = [
  '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--disable-quic',
];
// WebGPU compute *and* a WebGPU canvas through SwiftShader: without the Vulkan/ANGLE flags compute
// works but the first getCurrentTexture() kills the WebGPU instance (Chromium 156, seen here).
const WEBGPU_FLAGS = [
  '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-angle=swiftshader',
  '--ignore-gpu-blocklist',
];

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css',
  '.json': 'application/json', '.safetensors': 'application/octet-stream', '.md': 'text/markdown' };

/** Serves dist/ on 127.0.0.1 at a free port; resolves to { url, requests, close }. */
export async function serveDist({ hold = null } = {}) {
  const requests = [];
  const server = createServer(async (req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    requests.push(urlPath);
    // hold(path, requests): a promise to wait on before answering (a test's way to order two requests).
    if (hold) await hold(urlPath, requests);
    const file = path.join(DIST, urlPath.endsWith('/') ? urlPath + 'index.html' : urlPath);
    if (!file.startsWith(DIST)) { res.writeHead(403).end(); return; }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/`, requests, close: () => new Promise((r) => server.close(r)) };
}

/** Headless Debian Chromium, with or without WebGPU. */
export async function launch({ webgpu = true } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: webgpu ? [...QUIET_FLAGS, ...WEBGPU_FLAGS] : QUIET_FLAGS,
  });
}

/** Opens the app and waits until the model is loaded. */
export async function openApp(browser, url, viewport = { width: 1280, height: 900 }) {
  const page = await browser.newPage({ viewport });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  await page.waitForFunction(() => window.attnscope && window.attnscope.state().phase !== 'loading', null,
    { timeout: 120_000 });
  return { page, errors };
}

/** Replaces the text box's contents by typing `text` key by key. */
export async function typeText(page, text) {
  const box = page.locator('#text-input');
  await box.click();
  await box.press('Control+A');
  await box.press('Delete');
  await box.pressSequentially(text, { delay: 15 });
}

/** The CPU reference trace from the native CLI (`attnscope trace`). */
export function cliTrace(text, mask = 'causal', { quiet = false } = {}) {
  const out = execFileSync(CLI, ['trace', '--text', text, '--backend', 'cpu', '--mask', mask],
    { maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', quiet ? 'ignore' : 'inherit'] });
  return JSON.parse(out.toString());
}

export async function screenshot(page, name) {
  await mkdir(SCREENS, { recursive: true });
  const file = path.join(SCREENS, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Pixel statistics of an image (a data URL), decoded and measured in the page. */
export async function imageStats(page, dataUrl) {
  return page.evaluate(async (src) => {
    const img = new Image();
    img.src = src;
    await img.decode();
    const c2 = document.createElement('canvas');
    c2.width = img.width; c2.height = img.height;
    const g = c2.getContext('2d');
    g.drawImage(img, 0, 0);
    const { data } = g.getImageData(0, 0, img.width, img.height);
    let sum = 0, sumSq = 0, opaque = 0;
    const colours = new Set();
    const n = data.length / 4;
    for (let i = 0; i < data.length; i += 4) {
      const lum = 0.2126 * data[i] + 0.7152 * data[i + 1] + 0.0722 * data[i + 2];
      sum += lum; sumSq += lum * lum;
      if (data[i + 3] > 0) opaque++;
      if (colours.size < 5000) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    }
    const mean = sum / n;
    return { width: img.width, height: img.height, meanLuminance: mean,
      stdLuminance: Math.sqrt(Math.max(0, sumSq / n - mean * mean)), opaqueFraction: opaque / n,
      distinctColours: colours.size };
  }, dataUrl);
}

/** Pixel statistics of a canvas (the shown stage heatmap by default), from its own toDataURL(). */
export async function canvasStats(page, selector = 'canvas.heatmap-canvas:not(.off)') {
  const dataUrl = await page.evaluate((sel) => document.querySelector(sel).toDataURL('image/png'), selector);
  return imageStats(page, dataUrl);
}

/** A canvas's size and a hash of its pixels (two drawings compare equal only with the very same pixels). */
export async function canvasHash(page, selector) {
  return page.evaluate((sel) => {
    const c = document.querySelector(sel);
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let hash = 0;
    for (let i = 0; i < data.length; i++) hash = (hash * 31 + data[i]) >>> 0;
    return { width: c.width, height: c.height, hash };
  }, selector);
}

/** The trace's matrix for a page stage key (`raw`, `weights`, `q`, …), −∞ as null like the page. */
export function traceMatrix(trace, layer, head, stage) {
  const h = trace.layers[layer].heads[head];
  const field = { q: 'q', k: 'k', v: 'v', raw: 'scores_raw', scaled: 'scores_scaled', masked: 'scores_masked',
    weights: 'weights', out: 'output' }[stage];
  return h[field];
}

/** The middle value of `xs`, or the mean of the two middle ones of an even count (tools/bench_*.mjs). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Every cell within `tol` (null, the masked −∞, must match null). */
export function maxAbsDiff(actual, expected, what) {
  if (actual.length !== expected.length) throw new Error(`${what}: ${actual.length} rows, expected ${expected.length}`);
  let worst = 0;
  actual.forEach((row, i) => {
    if (row.length !== expected[i].length) throw new Error(`${what}: row ${i} has ${row.length}, expected ${expected[i].length}`);
    row.forEach((v, j) => {
      const e = expected[i][j];
      if (v === null || e === null) {
        if (v !== e) throw new Error(`${what}[${i}][${j}] = ${v}, CPU reference ${e}`);
        return;
      }
      worst = Math.max(worst, Math.abs(v - e));
    });
  });
  return worst;
}

/** softmax(logits / temperature) in float64, like engine::sampling::probabilities. */
export function softmax(logits, temperature) {
  const max = Math.max(...logits);
  const exps = logits.map((l) => Math.exp((l - max) / temperature));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}
