// The service worker (www/sw.js) and the shared model fetch (index.html's
// attnscopeFetch) against a server that misbehaves (issue 18, cases 6, 8 and
// 10): a 206 answer, a large file still arriving, a captive portal, 503s, an
// offline network, a new deploy, a widget on another site whose storage the
// browser refuses, and a widget given a lone surrogate. No wasm build needed:
// the server plays the app with index.html's own script (hostile_server.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { launch } from './harness.mjs';
import { hostileServer } from './hostile_server.mjs';

let server;
before(async () => { server = await hostileServer(); });
after(async () => { await server.close(); });

/** Opens the stand-in page and waits until the service worker controls it. */
async function controlledPage(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(server.url);
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 20_000 });
  return { context, page, errors };
}

/** What the page's fetch of `url` gives: status, body text (or its length), or the error. */
const pageFetch = (page, url, init = {}) => page.evaluate(async ([u, i]) => {
  try {
    const r = await fetch(u, i);
    const body = await r.arrayBuffer();
    return { status: r.status, length: body.byteLength, text: new TextDecoder().decode(body.slice(0, 200)), redirected: r.redirected };
  } catch (e) {
    return { error: String(e) };
  }
}, [url, init]);

/** Whether the service worker keeps a copy of `url` (in any cache), after it has had time to store it. */
const keptText = (page, url) => page.evaluate(async (u) => {
  for (let i = 0; i < 20; i++) {
    const r = await caches.match(new URL(u, location.href).href);
    if (r) return r.text();
    await new Promise((s) => setTimeout(s, 100));
  }
  return null;
}, url);

const cacheNames = (page) => page.evaluate(() => caches.keys());

let browser;
before(async () => { browser = await launch({ webgpu: false }); });
after(async () => { await browser.close(); });

/** A fresh profile whose page the worker controls and has kept (the second visit goes through it). */
async function visited(build = 'build-one') {
  server.state.mode = 'up';
  server.state.build = build;
  const { context, page, errors } = await controlledPage(browser);
  await page.reload();
  assert.match(await keptText(page, server.url), new RegExp(`app ${build}`));
  return { context, page, errors };
}

test('sw: a plain answer is kept in this build\'s cache; a 206 reaches the page and is not kept', { timeout: 60_000 }, async () => {
  const { context, page, errors } = await visited();
  try {
    assert.equal((await pageFetch(page, 'data/config.json')).status, 200);
    assert.match(await keptText(page, 'data/config.json'), /build-one/);
    assert.ok((await cacheNames(page)).includes('attnscope-offline-build-one'), String(await cacheNames(page)));
    // A store that throws (Cache Storage refuses a 206) must not cost the page its answer.
    const partial = await pageFetch(page, 'data/range.safetensors', { headers: { Range: 'bytes=0-9' } });
    assert.deepEqual([partial.status, partial.length], [206, 10], JSON.stringify(partial));
    assert.equal(await keptText(page, 'data/range.safetensors'), null, 'a 206 is never kept');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('sw: a large file streams through while the server still sends it, and is kept once complete', { timeout: 60_000 }, async () => {
  const { context, page } = await visited();
  try {
    const firstChunkMs = await page.evaluate(async () => {
      const t0 = performance.now();
      const r = await fetch('data/big.safetensors');
      const reader = r.body.getReader();
      await reader.read();
      const ms = performance.now() - t0;
      while (!(await reader.read()).done) { /* drain */ }
      return ms;
    });
    assert.ok(firstChunkMs < 2500, `first bytes after ${firstChunkMs.toFixed(0)} ms: the worker held the body back`);
    assert.ok((await keptText(page, 'data/big.safetensors')) !== null, 'the complete file is kept');
  } finally {
    await context.close();
  }
});

test('sw: a captive portal\'s login page is never kept, for a file or for the page', { timeout: 60_000 }, async () => {
  const { context, page } = await visited();
  try {
    server.state.mode = 'portal'; // a redirect to the login page
    const portal = await pageFetch(page, 'data/other.json');
    assert.ok(portal.redirected && portal.text.includes('log in'), JSON.stringify(portal));
    server.state.mode = 'portal200'; // the login page itself, in place of the file
    assert.ok((await pageFetch(page, 'data/third.json')).text.includes('log in'));
    await page.goto(`${server.url}?from=portal`);
    assert.ok((await page.content()).includes('log in'));
    await page.waitForTimeout(500);
    server.state.mode = 'offline';
    for (const file of ['data/other.json', 'data/third.json']) {
      const offline = await pageFetch(page, file);
      assert.ok(offline.error, `${file}: the portal's page was kept and served offline: ${JSON.stringify(offline)}`);
    }
    await page.goto(`${server.url}?from=portal`);
    assert.equal(await page.locator('#app').textContent(), 'app build-one', 'the kept app page, not the portal');
  } finally {
    await context.close();
  }
});

test('sw: a page load that meets a 503 or no network gets the kept page', { timeout: 60_000 }, async () => {
  const { context, page } = await visited();
  try {
    for (const mode of ['503', 'offline']) {
      server.state.mode = mode;
      await page.reload();
      assert.equal(await page.locator('#app').textContent(), 'app build-one', `page load on ${mode}`);
    }
    // Offline, a kept file answers too.
    server.state.mode = 'up';
    await pageFetch(page, 'data/config.json');
    await keptText(page, 'data/config.json');
    server.state.mode = 'offline';
    assert.match((await pageFetch(page, 'data/config.json')).text, /build-one/);
  } finally {
    await context.close();
  }
});

test('sw: a new deploy gets its own cache, the old one is deleted, and the shared model fetch reads new files', { timeout: 60_000 }, async () => {
  const { context, page, errors } = await visited('build-one');
  try {
    await page.waitForFunction(() => window.result !== undefined);
    assert.match(await page.evaluate(() => window.result), /build-one/);
    server.state.build = 'build-two';
    await page.evaluate(async () => (await navigator.serviceWorker.getRegistration()).update());
    await page.waitForFunction(async () => !(await caches.keys()).includes('attnscope-offline-build-one'), null,
      { timeout: 20_000, polling: 200 });
    // The old cache goes early in the new worker's activation: reload once it has finished activating
    // (a navigation during activation waits on it, and once timed out a CI run).
    await page.waitForFunction(async () => {
      const r = await navigator.serviceWorker.getRegistration();
      return !!r && !r.installing && !r.waiting && r.active?.state === 'activated';
    }, null, { timeout: 20_000, polling: 200 });
    await page.reload();
    await page.waitForFunction(() => window.result !== undefined);
    assert.equal(await page.locator('#app').textContent(), 'app build-two');
    // Within the shared fetch's 5 fresh minutes, a page of the new build must not read the old build's file.
    assert.match(await page.evaluate(() => window.result), /build-two/, 'a new deploy read an old model file');
    const names = await cacheNames(page);
    assert.ok(names.every((n) => !n.includes('build-one')), `old caches deleted: ${names}`);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

/** A lesson page on another site (localhost vs 127.0.0.1) embedding the app's widget. */
async function lessonServer(appUrl) {
  const html = `<!doctype html><meta charset="utf-8"><title>lesson</title>
<script src="${appUrl}embed.js"></script>
<attnscope-view text="The cat sat" view="weights"></attnscope-view>`;
  const s = createServer((req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  return { url: `http://localhost:${s.address().port}/`, close: () => new Promise((r) => s.close(r)) };
}

/** The widget's frame and what its shared fetch gave. */
async function widgetResult(page) {
  let frame = null;
  for (let i = 0; i < 100 && !frame; i++) {
    frame = page.frames().find((f) => f.url().includes('embed=1'));
    if (!frame) await page.waitForTimeout(100);
  }
  assert.ok(frame, 'the widget has a frame');
  await frame.waitForFunction(() => window.result !== undefined, null, { timeout: 20_000 });
  return frame.evaluate(() => ({ result: window.result, denied: window.storageDenied }));
}

test('a widget on another site loads its model with third-party storage refused', { timeout: 120_000 }, async () => {
  server.state.mode = 'up';
  server.state.build = 'build-one';
  const lesson = await lessonServer(server.url);
  // Real blocking: Chromium's "block third-party cookies" setting also refuses
  // third-party storage (Cache Storage, Web Locks) to frames of other sites.
  const profile = await mkdtemp(path.join(os.tmpdir(), 'attnscope-3p-'));
  try {
    await mkdir(path.join(profile, 'Default'), { recursive: true });
    await writeFile(path.join(profile, 'Default', 'Preferences'), JSON.stringify({
      profile: { block_third_party_cookies: true, cookie_controls_mode: 1,
        default_content_setting_values: { cookies: 1 } },
    }));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--disable-quic'],
    });
    try {
      // Record whether the browser really refused the frame its storage.
      await context.addInitScript(() => {
        if (window === window.top) return;
        window.storageDenied = (async () => {
          const out = {};
          try { await caches.open('probe'); out.caches = 'allowed'; } catch (e) { out.caches = String(e); }
          try { await navigator.locks.request('probe', () => {}); out.locks = 'allowed'; } catch (e) { out.locks = String(e); }
          return out;
        })();
      });
      const page = await context.newPage();
      const errors = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(lesson.url);
      const { result } = await widgetResult(page);
      const frame = page.frames().find((f) => f.url().includes('embed=1'));
      const denied = await frame.evaluate(() => window.storageDenied);
      console.log(`third-party storage in the widget's frame: ${JSON.stringify(denied)}`);
      assert.ok(/denied/i.test(denied.caches) || /denied/i.test(denied.locks),
        `the browser did not refuse storage, so this test would test nothing: ${JSON.stringify(denied)}`);
      assert.match(result, /"build":"build-one"/, `the widget's model fetch failed: ${result}`);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  } finally {
    await rm(profile, { recursive: true, force: true });
    await lesson.close();
  }
});

test('a widget given a lone surrogate shows a message and throws nothing', { timeout: 60_000 }, async () => {
  server.state.mode = 'up';
  const lesson = await lessonServer(server.url);
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(lesson.url);
    await page.evaluate(() => {
      const view = document.createElement('attnscope-view');
      view.setAttribute('text', 'half a pair: \ud83d and the rest');
      view.id = 'lone';
      document.body.append(view);
    });
    const message = await page.evaluate(() => document.getElementById('lone').shadowRoot.querySelector('.messages').textContent);
    assert.match(message, /surrogate/);
    const src = await page.evaluate(() => document.getElementById('lone').shadowRoot.querySelector('iframe').getAttribute('src'));
    assert.match(src, /half%20a%20pair%3A%20%EF%BF%BD%20and/);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await lesson.close();
  }
});

