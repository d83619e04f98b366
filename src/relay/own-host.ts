import http from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import { errorMessage } from '../lib/errors.ts';
import { bearerIs } from '../lib/secret-compare.ts';
import type { RelayMetrics } from './metrics.ts';

// The relay's own host (the relay's domain itself): one Hono app for health, metrics, the
// API and auth pages, and the console's files. The gateway hands it connections whose first
// request is for the relay's domain (gateway.ts, #handOverToRelayHost).

/** Env of a request from @hono/node-server (the node:http request underneath). */
type NodeEnv = { incoming?: { socket?: { remoteAddress?: string } } };
type Fetch = (req: Request, env: NodeEnv) => Response | Promise<Response>;

/** An app served under a path prefix of the relay's host, before the API (the console's static files). */
export interface OwnHostMount {
  /** e.g. `/console`: requests for it and below go to `fetch`. */
  path: string;
  fetch: Fetch;
}

export interface OwnHostOptions {
  domain: string;
  /** The relay's public URL (known once it listens). */
  url(): string;
  metrics: RelayMetrics;
  /** Bearer token that may read /metrics from non-loopback addresses. */
  metricsToken?: string;
  /** The API and auth pages (src/api), once identity is up; until then: 503. */
  api(): Fetch | undefined;
  mounts?: readonly OwnHostMount[];
}

export function createOwnHostApp(o: OwnHostOptions): Hono<{ Bindings: NodeEnv }> {
  const app = new Hono<{ Bindings: NodeEnv }>();
  const text = (status: number, body: string): Response => new Response(body, { status, headers: { 'content-type': 'text/plain' } });
  app.all('/healthz', () => text(200, 'ok\n'));
  app.all('/metrics', async (c) => {
    const ip = cleanIp(c.env?.incoming?.socket?.remoteAddress);
    // Constant-time over digests: `===` would leak the token byte by byte through timing.
    if (!isLoopback(ip) && !bearerIs(c.req.header('authorization'), o.metricsToken)) {
      return text(403, 'metrics are served to loopback clients, or with Authorization: Bearer <--metrics-token>\n');
    }
    try {
      return new Response(await o.metrics.registry.metrics(), { headers: { 'content-type': o.metrics.registry.contentType } });
    } catch (err) {
      return new Response(`reading the metrics failed: ${errorMessage(err)}`, { status: 500 });
    }
  });
  // Mount point for static apps (the console): a prefix and everything below it.
  for (const m of o.mounts ?? []) app.all(`${m.path}/*`, (c) => m.fetch(c.req.raw, c.env)).all(m.path, (c) => m.fetch(c.req.raw, c.env));
  app.all('*', (c) => {
    const api = o.api();
    return api ? api(c.req.raw, c.env) : text(503, 'the relay is starting\n');
  });
  return app;
}

/** The node:http server the gateway hands the relay's own connections to. */
export function createOwnHostServer(app: Hono<{ Bindings: NodeEnv }>): http.Server {
  const server = http.createServer(getRequestListener(app.fetch));
  server.keepAliveTimeout = 60_000;
  return server;
}

export function cleanIp(ip: string | undefined): string {
  if (!ip) return '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.');
}
