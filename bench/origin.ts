import http from 'node:http';
import type { AddressInfo } from 'node:net';

// The benchmark's origin: a plain node:http server in its own process. Prints its port.
//   GET  /hello       → 5 bytes
//   GET  /bytes/N     → N bytes, streamed in 1 MiB writes with back-pressure
//   POST /upload      → reads the body, answers with its length

const CHUNK = Buffer.alloc(1024 * 1024, 'x');

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (url === '/hello') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
    res.end('hello');
    return;
  }
  if (url.startsWith('/bytes/')) {
    let left = Number(url.slice(7));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': left });
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
    return;
  }
  if (url === '/upload') {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(String(n)));
    return;
  }
  res.writeHead(404).end();
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.maxConnections = 50_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
process.on('SIGTERM', () => process.exit(0));
