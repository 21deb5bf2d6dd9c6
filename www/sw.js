// attnscope's service worker: after the first visit the page works offline
// (presenters' venue networks fail). Same-origin GETs are answered from the
// network when it can; the answer goes to the page at once, and a copy is
// kept in the background, so a copy that cannot be kept (a full quota, say)
// never costs the page its answer, and a large file streams through as it
// arrives. When the network fails (or, for a page load, answers 5xx), the
// kept copy answers.
//
// What is kept: complete 200 answers from this origin to requests without a
// Range header; never an answer that was redirected elsewhere or whose type
// does not fit the request (a captive portal's login page served for
// model.safetensors.shuffled), and a page load only when it is this app's page.
//
// One cache per build: BUILD is stamped by tools/stamp_build.sh at `trunk
// build` (index.html carries the same stamp), so a new deploy installs a new
// worker, which deletes the caches of older builds when it activates. The
// page also sends the list of what it loaded (app, wasm, model, tokenizer),
// so whatever it fetched before this worker took control is kept too.
const BUILD = '__ATTNSCOPE_BUILD__';
const PREFIX = 'attnscope-offline-';
const CACHE = PREFIX + BUILD;
// The page's shared model fetch cache (index.html), one per build as well.
const SHARED_PREFIX = 'attnscope-shared-fetch-';
const SHARED = SHARED_PREFIX + BUILD;
// What this app's page holds and a portal's login page does not.
const APP_MARK = 'data-attnscope-build';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil((async () => {
  try {
    const names = await caches.keys();
    await Promise.all(names
      .filter((n) => n === 'attnscope-v1' || (n.startsWith(PREFIX) && n !== CACHE)
        || (n.startsWith(SHARED_PREFIX) && n !== SHARED))
      .map((n) => caches.delete(n)));
  } catch { /* storage denied: nothing kept to delete */ }
  await self.clients.claim();
})()));

const keyOf = (url) => url.split('#')[0];

/** Content types a kept answer may have, by the file's extension; null: any. */
function expectedType(url) {
  const ext = (new URL(url).pathname.match(/\.([a-z0-9]+)$/i) || [])[1];
  const types = {
    wasm: ['application/wasm'], js: ['javascript'], mjs: ['javascript'], css: ['text/css'], json: ['json'],
    safetensors: ['octet-stream'], shuffled: ['octet-stream'], png: ['image/'], svg: ['image/svg'], woff2: ['font', 'octet-stream'],
  };
  return ext ? types[ext.toLowerCase()] || null : null;
}

/** Whether `response` (the answer to `request`) may be kept. */
function keepable(request, response) {
  if (response.status !== 200 || response.type !== 'basic' || request.headers.has('range')) return false;
  // Redirected: a portal (or anything) answering for another URL.
  if (response.redirected || (response.url && keyOf(response.url) !== keyOf(request.url))) return false;
  if (response.headers.has('content-range')) return false;
  const want = expectedType(request.url);
  const type = (response.headers.get('content-type') || '').toLowerCase();
  // A file must have its type; a page (no extension) is checked for this app's mark when kept.
  return !want || want.some((w) => type.includes(w));
}

/** Keeps `copy` (a clone of the answer): a page only when it is this app's. Never throws. */
async function keep(request, copy) {
  try {
    let body = copy;
    if (request.mode === 'navigate' || (copy.headers.get('content-type') || '').startsWith('text/html')) {
      const text = await copy.text(); // a page is small; the answer has already gone to the page
      if (!text.includes(APP_MARK)) return;
      body = new Response(text, { status: copy.status, statusText: copy.statusText, headers: copy.headers });
    }
    const cache = await caches.open(CACHE);
    await cache.put(keyOf(request.url), body);
  } catch { /* a full quota, a body cut short, storage denied: the page has its answer anyway */ }
}

// What is being kept now, by key: a second keep of the same file (four widgets
// of one lesson page each sending their list) waits on the first.
const underWay = new Map();
/** Runs `work` for `key` unless a run for it is under way; resolves when that run ends. Never rejects. */
function once(key, work) {
  if (!underWay.has(key)) {
    const run = (async () => { try { await work(); } catch { /* kept nothing */ } })()
      .finally(() => underWay.delete(key));
    underWay.set(key, run);
  }
  return underWay.get(key);
}

/**
 * The page's own copy of `url` from its shared fetch cache (index.html), when it
 * holds one of the right type: a file the page fetched before this worker took
 * control, which need not be downloaded a second time. Never throws.
 */
async function pageCopy(url) {
  try {
    const copy = await (await caches.open(SHARED)).match(keyOf(url));
    if (!copy || copy.status !== 200) return undefined;
    const want = expectedType(url);
    const type = (copy.headers.get('content-type') || '').toLowerCase();
    return !want || want.some((w) => type.includes(w)) ? copy : undefined;
  } catch {
    return undefined;
  }
}

/** The kept copy for `request`; for a page load, the app's page as a last resort. Never throws. */
async function kept(request) {
  try {
    const cache = await caches.open(CACHE);
    return (await cache.match(keyOf(request.url)))
      || (request.mode === 'navigate' ? await cache.match(new URL('./', self.location).href) : undefined);
  } catch {
    return undefined;
  }
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith((async () => {
    let response;
    try {
      response = await fetch(request);
    } catch (offline) {
      const copy = await kept(request);
      if (copy) return copy;
      throw offline;
    }
    if (request.mode === 'navigate' && response.status >= 500) return (await kept(request)) || response;
    if (keepable(request, response)) event.waitUntil(once(keyOf(request.url), () => keep(request, response.clone())));
    return response;
  })());
});

// { cache: [urls] } from the page: keep each one not kept yet, by the same
// rules, from the page's shared fetch cache when it holds the file; reply how
// many are kept.
self.addEventListener('message', (event) => {
  const urls = (event.data && event.data.cache) || [];
  event.waitUntil((async () => {
    let count = 0;
    try {
      const cache = await caches.open(CACHE);
      for (const url of urls) {
        if (typeof url !== 'string' || new URL(url).origin !== self.location.origin) continue;
        const key = keyOf(url);
        // A keep of this file under way (the page's own fetch through this worker) ends first.
        await underWay.get(key);
        await once(key, async () => {
          if (await cache.match(key)) return;
          const request = new Request(url);
          const copy = await pageCopy(url);
          if (copy) return keep(request, copy);
          const response = await fetch(request); // offline already: nothing to add
          if (keepable(request, response)) await keep(request, response);
        });
      }
      count = (await cache.keys()).length;
    } catch { /* storage denied */ }
    if (event.source) event.source.postMessage({ cached: count });
  })());
});
