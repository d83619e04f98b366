import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

// A real origin server for end-to-end tests: echo, streaming bodies both ways, SSE, slow
// responses, WebSocket, and a log of requests the client aborted.

export interface Origin {
  port: number;
  server: http.Server;
  /** Paths of requests whose client went away before the response ended. */
  aborted: string[];
  /** Every request's target as received, in arrival order (pipelined ones included). */
  received: string[];
  close(): Promise<void>;
}

function echo(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, body: body.toString('utf8'), bodyLength: body.length });
  res.writeHead(200, { 'content-type': 'application/json', 'x-origin': 'yes' });
  res.end(req.method === 'HEAD' ? undefined : out);
}

export async function startOrigin(): Promise<Origin> {
  const aborted: string[] = [];
  const received: string[] = [];
  const server = http.createServer((req, res) => {
    received.push(req.url ?? '');
    const url = new URL(req.url ?? '/', 'http://origin');
    const path = url.pathname;
    if (path === '/upload') {
      // Counts a streamed upload without buffering it.
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => res.end(JSON.stringify({ received: n })));
      return;
    }
    if (path === '/download') {
      const size = Number(url.searchParams.get('size') ?? 0);
      const chunk = Buffer.alloc(Math.min(size, 256 * 1024) || 1, 0x61);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
      let sent = 0;
      const pump = (): void => {
        while (sent < size) {
          const n = Math.min(chunk.length, size - sent);
          sent += n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    if (path === '/chunked') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('one,');
      setTimeout(() => {
        res.write('two,');
        setTimeout(() => res.end('three'), 20);
      }, 20);
      return;
    }
    if (path === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let i = 0;
      const timer = setInterval(() => {
        res.write(`data: event-${i}\n\n`);
        if (++i === 3) {
          clearInterval(timer);
          // Stays open until the client leaves, like a real event stream.
        }
      }, 100);
      req.on('close', () => clearInterval(timer));
      return;
    }
    if (path === '/hang') {
      // Never answers; notes when the client goes away.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('started\n');
      res.on('close', () => {
        if (!res.writableFinished) aborted.push(path);
      });
      return;
    }
    if (path === '/status') {
      res.writeHead(Number(url.searchParams.get('code') ?? 200));
      res.end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => echo(req, res, Buffer.concat(chunks)));
  });
  server.keepAliveTimeout = 60_000;
  const wss = new WebSocketServer({ server, path: '/ws' });
  wss.on('connection', (ws, req) => {
    ws.send(`hello ${req.headers['x-forwarded-for'] ?? ''}`);
    ws.on('message', (m, isBinary) => ws.send(m, { binary: isBinary }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    server,
    aborted,
    received,
    close: async () => {
      wss.close();
      server.closeAllConnections();
      server.close();
    },
  };
}
