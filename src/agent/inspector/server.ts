import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { errorMessage, isTunnError, TunnError } from '../../lib/errors.ts';
import type { Target } from '../target.ts';
import { decodedBody, downloadBytes, sniffImage } from './body-view.ts';
import { detail, matches, summary } from './entry-view.ts';
import { guardContext, refuse, type GuardContext } from './guard.ts';
import { parseReplayEdit, replay } from './replay.ts';
import type { InspectorStore } from './store.ts';

// The inspector's HTTP server: the page (static files, strict CSP, no inline script) and its
// JSON API, on a loopback address only. Every request passes the guard first.

export interface InspectorServerOptions {
  store: InspectorStore;
  /** Where each tunnel (by index) forwards: the only place a replay goes. */
  targets: Target[];
  verifyTargetTls: boolean;
  showSecrets: boolean;
  /** Defaults to a fresh random secret. */
  secret?: string;
  /** Bytes of live events a page may fall behind by before it is cut off (default 1 MiB). */
  maxEventBacklog?: number;
}

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const PAGE_FILES: Record<string, string> = { '/': 'index.html', '/app.js': 'app.js', '/style.css': 'style.css' };
const PAGE_TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };
/** A page that falls this far behind on live events is cut off (it reconnects and reloads). */
const MAX_EVENT_BACKLOG = 1024 * 1024;

export interface InspectorServer {
  server: Server;
  secret: string;
  /** Starts answering on `server` once it listens on (host, port). */
  bind(host: string, port: number): void;
}

export function createInspectorServer(o: InspectorServerOptions): InspectorServer {
  const secret = o.secret ?? randomBytes(24).toString('base64url');
  const page = Object.fromEntries(Object.entries(PAGE_FILES).map(([p, f]) => [p, readFileSync(join(import.meta.dirname, 'page', f))]));
  let guard: GuardContext | undefined;
  const server = http.createServer((req, res) => {
    setSecurityHeaders(res);
    if (!guard) return void fail(res, 503, 'the inspector is starting');
    void handle(req, res, guard).catch((err: unknown) => fail(res, 500, `inspector error: ${errorMessage(err)}`));
  });
  server.keepAliveTimeout = 5_000;

  async function handle(req: IncomingMessage, res: ServerResponse, g: GuardContext): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://inspector');
    const method = req.method ?? 'GET';
    // The page's files hold no data: they need no secret (a browser cannot send one when it
    // opens the printed URL). The page reads the secret from the URL's #fragment, which never
    // reaches a server, and sends it as a bearer token with every API call.
    const file = method === 'GET' ? page[url.pathname] : undefined;
    const refusal = refuse(req, g, !file);
    if (refusal) return void fail(res, refusal.status, refusal.message);
    if (file) {
      res.writeHead(200, { 'content-type': PAGE_TYPES[PAGE_FILES[url.pathname]!.split('.').pop()!]! });
      return void res.end(file);
    }
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== 'api') return void fail(res, 404, `no such page: ${url.pathname}; the inspector is at /`);
    if (parts[1] === 'events' && method === 'GET') return events(res);
    if (parts[1] === 'stats' && method === 'GET') return json(res, 200, { entries: o.store.size, retainedBytes: o.store.retainedBytes, maxEntries: o.store.maxEntries, maxBytes: o.store.maxBytes, rss: process.memoryUsage.rss() });
    if (parts[1] !== 'requests') return void fail(res, 404, `no such API: ${url.pathname}; see /api/requests`);
    if (parts.length === 2) {
      if (method === 'GET') {
        const f = { status: url.searchParams.get('status') ?? undefined, method: url.searchParams.get('method') ?? undefined, path: url.searchParams.get('path') ?? undefined, visitor: url.searchParams.get('visitor') ?? undefined };
        return json(res, 200, { requests: o.store.list().map((e) => summary(e, o.showSecrets)).filter((s) => matches(s, f)) });
      }
      if (method === 'DELETE') {
        o.store.clear();
        return json(res, 200, { cleared: true });
      }
      return void fail(res, 405, `${method} /api/requests is not supported: use GET to list or DELETE to clear`);
    }
    const id = Number(parts[2]);
    const entry = Number.isInteger(id) ? o.store.get(id) : undefined;
    if (!entry) return void fail(res, 404, `no captured request ${parts[2]}: it may have been cleared or evicted (the inspector keeps the last ${o.store.maxEntries})`);
    if (parts.length === 3 && method === 'GET') return json(res, 200, detail(entry, o.showSecrets));
    if (parts[3] === 'replay' && method === 'POST') {
      const target = o.targets[entry.tunnelIndex];
      if (!target) return void fail(res, 404, 'the tunnel of this request is gone');
      try {
        const edit = parseReplayEdit(await readJson(req));
        const done = await replay(o.store, entry, target, edit, o.verifyTargetTls);
        return json(res, 201, summary(done, o.showSecrets));
      } catch (err) {
        if (isTunnError(err)) return void fail(res, 400, err.message);
        throw err;
      }
    }
    if (parts[3] === 'body' && (parts[4] === 'request' || parts[4] === 'response') && method === 'GET') {
      const body = parts[4] === 'request' ? entry.requestBody : entry.responseBody;
      const headers = (parts[4] === 'request' ? entry.requestHeaders : entry.responseHeaders) ?? [];
      if (url.searchParams.get('as') === 'image') {
        // Only bytes that are a raster image by signature, with that type: never SVG or HTML.
        const { bytes } = decodedBody(body, headers);
        const type = sniffImage(bytes);
        if (!type) return void fail(res, 415, 'this body is not a PNG, JPEG, GIF or WebP image; download it instead');
        res.writeHead(200, { 'content-type': type, 'content-security-policy': "default-src 'none'; sandbox" });
        return void res.end(bytes);
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-disposition': `attachment; filename="request-${entry.id}-${parts[4]}.bin"`, 'content-security-policy': "default-src 'none'; sandbox" });
      return void res.end(downloadBytes(body, headers, o.showSecrets));
    }
    fail(res, 404, `no such API: ${method} ${url.pathname}`);
  }

  function events(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(': live\n\n');
    const unsubscribe = o.store.subscribe((e) => {
      if (res.writableLength > (o.maxEventBacklog ?? MAX_EVENT_BACKLOG)) {
        // A slow page loses its live view, never the tunnel its traffic.
        unsubscribe();
        res.destroy();
        return;
      }
      res.write(e.type === 'clear' ? 'event: clear\ndata: {}\n\n' : `event: ${e.type}\ndata: ${JSON.stringify(summary(e.entry, o.showSecrets))}\n\n`);
    });
    res.on('close', unsubscribe);
  }

  return {
    server,
    secret,
    bind(host, port) {
      guard = guardContext(host, port, secret);
    },
  };
}

function setSecurityHeaders(res: ServerResponse): void {
  res.setHeader('content-security-policy', CSP);
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('referrer-policy', 'no-referrer');
  res.setHeader('cross-origin-resource-policy', 'same-origin');
  res.setHeader('cross-origin-opener-policy', 'same-origin');
  res.setHeader('cache-control', 'no-store');
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function fail(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) return void res.destroy();
  json(res, status, { error: { status, message } });
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > 4 * 1024 * 1024) throw new TunnError('INVALID_INPUT', 'replay: the edit is larger than 4 MiB');
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new TunnError('INVALID_INPUT', 'replay: the request body is not valid JSON');
  }
}
