// attnscope's model files from the hub, a URL or the user's disk: HTTP Range
// reads of headers before anything large is fetched, one download of a whole
// model with progress and Cancel, and Cache Storage (`attnscope-models-v1`)
// so a second open needs no network. src/ui/web/models.rs calls
// `window.attnscopeModels`; nothing else does.
//
// What is kept: each file under its URL plus its ETag (`?attnscope-etag=`),
// and one index entry per model (repo and revision, or URL: the model's key)
// naming its files, ETags and sizes. A model is kept only once every file has
// arrived, so a failed or cancelled download leaves nothing; a quota error
// deletes what was put and the page keeps the files in memory for this visit.
// Frames of one page download a model once: the download holds a Web Lock on
// the model's key, and a second frame waiting on it finds the model kept.
window.attnscopeModels = (() => {
  const CACHE = 'attnscope-models-v1';
  const INDEX = 'https://attnscope.invalid/model-index/';
  let controller = null;

  const failure = (message, kind) => Object.assign(new Error(message), { attnscopeKind: kind });
  const openCache = async () => {
    try {
      if (!('caches' in window) || !window.caches) return null;
      return await caches.open(CACHE);
    } catch (_) {
      return null; // storage blocked (a third-party frame, a private window)
    }
  };
  const indexUrl = (key) => INDEX + encodeURIComponent(key);
  const keptUrl = (url, etag) => `${url}${url.includes('?') ? '&' : '?'}attnscope-etag=${encodeURIComponent(etag || '')}`;

  async function readIndex(key) {
    const cache = await openCache();
    if (!cache) return null;
    try {
      const r = await cache.match(indexUrl(key));
      return r ? await r.json() : null;
    } catch (_) {
      return null;
    }
  }

  /** The kept copy of `url` of model `key` (a Response), or null. */
  async function kept(key, url) {
    const index = await readIndex(key);
    const file = index && index.files.find((f) => f.url === url);
    if (!file) return null;
    const cache = await openCache();
    return cache ? (await cache.match(keptUrl(url, file.etag))) || null : null;
  }

  const signal = () => {
    if (!controller) controller = new AbortController();
    return controller.signal;
  };

  async function get(url, init) {
    let r;
    try {
      r = await fetch(url, { ...init, signal: signal(), cache: 'no-store' });
    } catch (e) {
      if (e && e.name === 'AbortError') throw failure('cancelled', 'cancelled');
      throw failure(`${url}: ${e && e.message ? e.message : e} (no network, or the server does not allow this page: CORS)`, 'network');
    }
    if (r.status === 404) throw failure(`${url}: not found (HTTP 404)`, 'missing');
    if (r.status === 401 || r.status === 403) {
      throw failure(`${url}: HTTP ${r.status}: the repo is gated or private, and this page does not sign in to the hub`, 'status');
    }
    if (!r.ok) throw failure(`${url}: HTTP ${r.status} ${r.statusText}`, 'status');
    return r;
  }

  /** Reads `body` up to `limit` bytes (the rest is cancelled). */
  async function readUpTo(r, limit) {
    if (!r.body || !r.body.getReader) return new Uint8Array(await r.arrayBuffer()).slice(0, limit);
    const reader = r.body.getReader();
    const out = new Uint8Array(limit);
    let at = 0;
    while (at < limit) {
      const part = await reader.read();
      if (part.done) break;
      const take = Math.min(part.value.byteLength, limit - at);
      out.set(part.value.subarray(0, take), at);
      at += take;
    }
    reader.cancel().catch(() => {});
    return out.slice(0, at);
  }

  /**
   * Bytes `start..=end` of `url` (model `key`): from the kept copy when there
   * is one, else with a Range request. Resolves to { bytes, size, etag, kept }
   * (size: the whole file's, from Content-Range; 0 when unknown).
   */
  async function range(key, url, start, end) {
    const index = await readIndex(key);
    // A kept model is complete: a file it does not hold (model.safetensors of a
    // sharded model) is missing without asking the network.
    if (index && !index.files.some((f) => f.url === url)) throw failure(`${url}: not part of the model kept on this device`, 'missing');
    const copy = await kept(key, url);
    if (copy) {
      const blob = await copy.blob();
      const bytes = new Uint8Array(await blob.slice(start, end + 1).arrayBuffer());
      return { bytes, size: blob.size, etag: copy.headers.get('x-attnscope-etag') || '', kept: true };
    }
    const r = await get(url, { headers: { Range: `bytes=${start}-${end}` } });
    const etag = r.headers.get('etag') || '';
    const whole = /\/(\d+)\s*$/.exec(r.headers.get('content-range') || '');
    let size = whole ? Number(whole[1]) : 0;
    if (r.status === 200) {
      // No Range support: read what was asked for and stop.
      size = Number(r.headers.get('content-length')) || 0;
      const bytes = await readUpTo(r, end + 1);
      return { bytes: bytes.slice(start), size, etag, kept: false };
    }
    const bytes = await readUpTo(r, end - start + 1);
    return { bytes, size, etag, kept: false };
  }

  /**
   * Downloads every file of model `key` ([{ name, url, size }]) and keeps
   * them. onProgress(done, total, detailJson) as bytes arrive. Resolves to
   * { files: [ArrayBuffer], kept: bool, note: string, network: bytes fetched }.
   */
  async function download(key, name, files, onProgress) {
    const run = async () => {
      const mine = new AbortController();
      controller = mine;
      const total = files.reduce((n, f) => n + (f.size || 0), 0);
      const detail = files.map((f) => ({ name: f.name, done: 0, size: f.size || 0 }));
      let done = 0;
      let network = 0;
      const report = () => { try { onProgress(done, total, JSON.stringify(detail)); } catch (_) {} };
      const bodies = [];
      const answers = [];
      for (let i = 0; i < files.length; i++) {
        const f = files[i];
        const copy = await kept(key, f.url);
        if (copy) {
          const body = await copy.arrayBuffer();
          bodies.push(body);
          answers.push(null);
          detail[i].done = body.byteLength;
          done += body.byteLength;
          report();
          continue;
        }
        const r = await get(f.url, {});
        const etag = r.headers.get('etag') || '';
        // With the size announced, each chunk goes straight into its place as it arrives (one
        // copy of the whole file at the end was a task of tens of ms for a 100 MB model).
        const chunks = [];
        const whole = f.size ? new Uint8Array(f.size) : null;
        let got = 0;
        try {
          const reader = r.body.getReader();
          for (;;) {
            const part = await reader.read();
            if (part.done) break;
            if (whole && got + part.value.byteLength <= whole.byteLength) whole.set(part.value, got);
            else chunks.push(part.value);
            got += part.value.byteLength;
            network += part.value.byteLength;
            done += part.value.byteLength;
            detail[i].done = got;
            report();
          }
        } catch (e) {
          if (mine.signal.aborted) throw failure('cancelled', 'cancelled');
          throw failure(`${f.url}: the download broke off after ${got} bytes (${e && e.message})`, 'network');
        }
        if (f.size && got !== f.size) {
          throw failure(`${f.url}: ${got} bytes arrived, ${f.size} were announced: the file changed or broke off`, 'network');
        }
        let body = whole;
        if (!whole) {
          body = new Uint8Array(got);
          let at = 0;
          for (const c of chunks) { body.set(c, at); at += c.byteLength; }
        }
        bodies.push(body.buffer);
        answers.push({ etag, size: got });
      }
      if (mine.signal.aborted) throw failure('cancelled', 'cancelled');
      controller = null;
      const { kept: stored, note } = await keep(key, name, files, bodies, answers);
      return { files: bodies, kept: stored, note, network };
    };
    try {
      if (navigator.locks && navigator.locks.request) {
        return await navigator.locks.request(`attnscope-model ${key}`, run);
      }
    } catch (e) {
      if (e && e.attnscopeKind) throw e;
      // Web Locks refused: download without one.
    }
    return run();
  }

  /** A stream of `buffer`'s bytes, 8 MiB a pull (views of it, not copies). */
  function chunked(buffer) {
    const CHUNK = 8 << 20;
    let at = 0;
    return new ReadableStream({
      pull(controller) {
        if (at >= buffer.byteLength) {
          controller.close();
          return;
        }
        const n = Math.min(CHUNK, buffer.byteLength - at);
        controller.enqueue(new Uint8Array(buffer, at, n));
        at += n;
      },
    });
  }

  /** Puts the files and then the index; on any failure takes them out again. */
  async function keep(key, name, files, bodies, answers) {
    if (answers.every((a) => a === null)) return { kept: true, note: '' };
    const cache = await openCache();
    if (!cache) return { kept: false, note: 'this browser does not allow this page to keep files' };
    const entries = files.map((f, i) => ({
      name: f.name, url: f.url, etag: (answers[i] && answers[i].etag) || '', size: bodies[i].byteLength,
    }));
    const old = await readIndex(key);
    if (old) {
      // Complete the index with what was kept before (ETags of the files read from it).
      for (const e of entries) {
        const before = old.files.find((f) => f.url === e.url);
        if (before && answers[entries.indexOf(e)] === null) e.etag = before.etag;
      }
    }
    const put = [];
    try {
      for (let i = 0; i < files.length; i++) {
        if (answers[i] === null) continue;
        const url = keptUrl(entries[i].url, entries[i].etag);
        // The body is streamed 8 MiB at a time: a Response made of the whole buffer copied it
        // at once (the Fetch standard's "extract a body"), and with the put, one task of
        // ~50–80 ms for SmolLM2's 98 MB. The chunks are views: the buffer stays the page's.
        await cache.put(url, new Response(chunked(bodies[i]), {
          headers: { 'content-type': 'application/octet-stream', 'x-attnscope-etag': entries[i].etag },
        }));
        put.push(url);
      }
      const index = { key, name, files: entries, bytes: entries.reduce((n, e) => n + e.size, 0), stored: Date.now() };
      await cache.put(indexUrl(key), new Response(JSON.stringify(index), { headers: { 'content-type': 'application/json' } }));
      if (navigator.storage && navigator.storage.persist) navigator.storage.persist().catch(() => {});
      return { kept: true, note: '' };
    } catch (e) {
      await Promise.all(put.map((u) => cache.delete(u).catch(() => {})));
      const quota = e && (e.name === 'QuotaExceededError' || /quota/i.test(String(e.message)));
      return {
        kept: false,
        note: quota ? 'this device has no room left to keep it (storage quota)' : `it could not be kept (${e && e.message})`,
      };
    }
  }

  function cancel() {
    if (controller) controller.abort();
    controller = null;
  }

  /** The models kept on this device: [{ key, name, bytes, stored }]. */
  async function list() {
    const cache = await openCache();
    if (!cache) return [];
    const out = [];
    for (const req of await cache.keys()) {
      if (!req.url.startsWith(INDEX)) continue;
      try {
        const index = await (await cache.match(req)).json();
        out.push({ key: index.key, name: index.name, bytes: index.bytes, stored: index.stored });
      } catch (_) { /* a broken entry: skipped */ }
    }
    return out;
  }

  async function remove(key) {
    const cache = await openCache();
    if (!cache) return false;
    const index = await readIndex(key);
    if (index) await Promise.all(index.files.map((f) => cache.delete(keptUrl(f.url, f.etag))));
    return cache.delete(indexUrl(key));
  }

  /** { usage, quota, persisted } of this origin's storage (0s when unknown). */
  async function estimate() {
    const s = navigator.storage;
    const e = s && s.estimate ? await s.estimate().catch(() => ({})) : {};
    const persisted = s && s.persisted ? await s.persisted().catch(() => false) : false;
    return { usage: e.usage || 0, quota: e.quota || 0, persisted };
  }

  return { range, download, cancel, list, remove, estimate };
})();
