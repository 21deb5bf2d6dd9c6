// A stand-in for the Hugging Face hub on a second origin, for the model tests:
// serves ROOT/{org}/{name}/{file} as /{org}/{name}/resolve/{revision}/{file}
// (and the same tree under /files/ as plain URLs), with CORS (Range allowed;
// Content-Length, Content-Range, ETag and Accept-Ranges exposed), Range
// requests (206 + Content-Range) and strong ETags. Records every request with
// the bytes it sent, can be slowed down (bytes per second) so a test can
// cancel a download, and can be switched off ("offline": connections refused
// answers, here a 503 that the page treats as a network failure).
import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-headers': 'Range, If-None-Match',
  'access-control-expose-headers': 'Content-Length, Content-Range, ETag, Accept-Ranges',
};

/** Starts the server on 127.0.0.1; resolves to { url, requests, set(options), close }. */
export async function startHub(root) {
  const requests = [];
  const options = { bytesPerSecond: 0, offline: false };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const entry = { method: req.method, path: decodeURIComponent(url.pathname), range: req.headers.range || null, sent: 0 };
    requests.push(entry);
    if (req.method === 'OPTIONS') { res.writeHead(204, { ...CORS, 'access-control-max-age': '600' }).end(); return; }
    if (options.offline) { res.writeHead(503, CORS).end('offline'); return; }
    const hub = /^\/([^/]+)\/([^/]+)\/resolve\/([^/]+(?:\/[^/]+)*?)\/([^/]+)$/.exec(entry.path);
    const plain = /^\/files\/(.+)$/.exec(entry.path);
    const rel = hub ? `${hub[1]}/${hub[2]}/${hub[4]}` : plain ? plain[1] : null;
    const file = rel && path.resolve(root, rel);
    if (!file || !file.startsWith(path.resolve(root) + path.sep)) { res.writeHead(404, CORS).end('not found'); return; }
    let info;
    try {
      info = await stat(file);
      if (!info.isFile()) throw new Error('not a file');
    } catch {
      res.writeHead(404, CORS).end('not found');
      return;
    }
    const size = info.size;
    const etag = `"${size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
    const headers = { ...CORS, etag, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(entry.range || '');
    if (range) {
      start = Number(range[1]);
      end = range[2] === '' ? size - 1 : Math.min(Number(range[2]), size - 1);
      if (start >= size || end < start) {
        res.writeHead(416, { ...headers, 'content-range': `bytes */${size}` }).end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['content-length'] = String(end - start + 1);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') { res.end(); return; }
    const stream = createReadStream(file, { start, end, highWaterMark: 64 << 10 });
    const slow = options.bytesPerSecond > 0 && status === 200;
    stream.on('data', (chunk) => {
      entry.sent += chunk.length;
      if (!res.write(chunk) || slow) {
        stream.pause();
        const wait = slow ? (1000 * chunk.length) / options.bytesPerSecond : 0;
        const go = () => setTimeout(() => stream.resume(), wait);
        if (res.writableNeedDrain) res.once('drain', go); else go();
      }
    });
    stream.on('end', () => res.end());
    stream.on('error', () => res.destroy());
    res.on('close', () => stream.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    set: (o) => Object.assign(options, o),
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}
