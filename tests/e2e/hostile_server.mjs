// A local server that misbehaves on demand, for the service worker and the
// shared model fetch (tests/e2e/offline_hostile.test.mjs): it answers Range
// requests with 206, can answer everything with 503, play a captive portal
// (a redirect to its login page, or the login page itself in place of any
// file), drop connections (offline), hold a large file half-sent, and switch
// to a new deploy (a new build id in sw.js, the page and the model files).
//
// The page it serves is a stand-in for the app: index.html's own first inline
// script (attnscopeFetch and the service worker registration), with the build
// mark, and nothing else, so these tests need no wasm build.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './harness.mjs';

const INDEX = readFileSync(path.join(ROOT, 'index.html'), 'utf8');
const INDEX_SCRIPT = INDEX.slice(INDEX.indexOf('<script>') + '<script>'.length, INDEX.indexOf('</script>'));
const SW = readFileSync(path.join(ROOT, 'www/sw.js'), 'utf8');
const EMBED = readFileSync(path.join(ROOT, 'www/embed.js'), 'utf8');
export const LOGIN = '<!doctype html><title>Venue Wi-Fi</title><h1>Please log in to use the Wi-Fi</h1>';

/** Starts the server on `host`; resolves to its controls. */
export async function hostileServer({ host = '127.0.0.1', build = 'build-one' } = {}) {
  const state = { mode: 'up', build, requests: [], release: null };
  const page = () => `<!doctype html><html><head><meta charset="utf-8">
<meta name="attnscope-build" content="${state.build}" data-attnscope-build>
<title>attnscope stand-in</title></head><body><p id="app">app ${state.build}</p>
<script>${INDEX_SCRIPT.replaceAll('__ATTNSCOPE_BUILD__', state.build)}</script>
<script>
  // As src/ui/web/fetch.rs does: the model's config through the shared fetch.
  window.shared = attnscopeFetch('data/config.json')
    .then((b) => (window.result = new TextDecoder().decode(b)))
    .catch((e) => (window.result = 'error: ' + e.message));
</script></body></html>`;
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    state.requests.push(`${state.mode} ${req.headers.range ? 'range ' : ''}${url.pathname}`);
    if (url.pathname === '/login') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(LOGIN);
      return;
    }
    if (state.mode === 'offline') { req.socket.destroy(); return; }
    if (state.mode === '503') {
      res.writeHead(503, { 'content-type': 'text/html' }).end('<h1>503 Service Unavailable</h1>');
      return;
    }
    if (state.mode === 'portal') { res.writeHead(302, { location: '/login' }).end(); return; }
    if (state.mode === 'portal200') { res.writeHead(200, { 'content-type': 'text/html' }).end(LOGIN); return; }
    const send = (type, body) => res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' }).end(body);
    switch (url.pathname) {
      case '/':
      case '/index.html':
        return send('text/html', page());
      case '/sw.js':
        return send('text/javascript', SW.replaceAll('__ATTNSCOPE_BUILD__', state.build));
      case '/embed.js':
        return send('text/javascript', EMBED);
      case '/data/config.json':
      case '/data/other.json':
      case '/data/third.json':
        return send('application/json', JSON.stringify({ build: state.build, file: url.pathname }));
      case '/data/range.safetensors': {
        const body = Buffer.alloc(1000, 7);
        const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range || '');
        if (!m) return send('application/octet-stream', body);
        const [from, to] = [+m[1], Math.min(+m[2], body.length - 1)];
        res.writeHead(206, { 'content-type': 'application/octet-stream', 'content-range': `bytes ${from}-${to}/${body.length}`,
          'content-length': to - from + 1 });
        return res.end(body.subarray(from, to + 1));
      }
      case '/data/big.safetensors': {
        // 64 KiB at once, the other 4 MiB only when released (or after 4 s).
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': (64 << 10) + (4 << 20) });
        res.write(Buffer.alloc(64 << 10, 1));
        const finish = () => { state.release = null; res.end(Buffer.alloc(4 << 20, 2)); };
        const timer = setTimeout(finish, 4000);
        state.release = () => { clearTimeout(timer); finish(); };
        return undefined;
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return undefined;
    }
  });
  await new Promise((resolve) => server.listen(0, host, resolve));
  const { port } = server.address();
  return {
    url: `http://${host === '127.0.0.1' ? '127.0.0.1' : host}:${port}/`,
    port,
    state,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}
