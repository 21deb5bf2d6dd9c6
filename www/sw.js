// attnscope's service worker: after the first visit the page works offline
// (presenters' venue networks fail). Every same-origin GET is answered from the
// network when it can be, and the answer kept; when the network fails, the kept
// copy answers. The page also sends the list of what it loaded (app, wasm,
// model, tokenizer), so whatever it fetched before this worker took control is
// kept too.
const CACHE = 'attnscope-v1';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const response = await fetch(request);
      if (response.ok) await cache.put(request.url.split('#')[0], response.clone());
      return response;
    } catch (offline) {
      const kept = await cache.match(request.url.split('#')[0], { ignoreSearch: false })
        || (request.mode === 'navigate' ? await cache.match(new URL('./', self.location).href) : undefined);
      if (kept) return kept;
      throw offline;
    }
  })());
});

// { cache: [urls] } from the page: keep each one not kept yet; reply how many are kept.
self.addEventListener('message', (event) => {
  const urls = (event.data && event.data.cache) || [];
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    for (const url of urls) {
      if (new URL(url).origin !== self.location.origin || await cache.match(url)) continue;
      try {
        const response = await fetch(url);
        if (response.ok) await cache.put(url, response);
      } catch { /* offline already: nothing to add */ }
    }
    const kept = (await cache.keys()).length;
    if (event.source) event.source.postMessage({ cached: kept });
  })());
});
