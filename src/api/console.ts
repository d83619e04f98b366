import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Hono } from 'hono';
import { CONSOLE_PAGES } from './console-paths.ts';
import type { ApiEnv } from './http.ts';

// The web console's files on the relay's own host (built from web/ into web/dist/ by
// scripts/build-web.ts). Every console page path answers index.html, never cached without a
// check (`no-cache`), so a new build is picked up at once; the hashed files under /assets/ are
// cached for a year. A strict CSP: scripts and styles only from the relay's own origin (the
// build inlines none), no framing, no plug-ins; the API is the only thing the page talks to.
//
// Without a build (a checkout where `npm ci` has not run) `/` says what the relay is, as it did
// before the console, and how to build it.

export const CONSOLE_HEADERS: readonly [string, string][] = [
  ['content-security-policy', "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"],
  ['x-content-type-options', 'nosniff'],
  ['x-frame-options', 'DENY'],
  ['referrer-policy', 'same-origin'],
  ['cross-origin-opener-policy', 'same-origin'],
];

const ASSET_NAME = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.(js|css|svg|png|woff2|ico)$/;
const TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
  woff2: 'font/woff2',
  ico: 'image/x-icon',
};

export interface ConsoleOptions {
  /** The relay's public URL (for the page shown when the console is not built). */
  relayUrl: URL;
  /** The built console; default: web/dist beside src/ (or beside dist/ in the npm package). */
  dir?: string;
}

export function consoleRoutes(opts: ConsoleOptions) {
  const dir = opts.dir ?? resolve(import.meta.dirname, '../../web/dist');
  const app = new Hono<ApiEnv>();

  for (const { path } of CONSOLE_PAGES) {
    app.get(path, async () => {
      let html: Buffer;
      try {
        html = await readFile(join(dir, 'index.html'));
      } catch {
        return notBuilt(opts.relayUrl, path);
      }
      return new Response(new Uint8Array(html), { status: 200, headers: [...CONSOLE_HEADERS, ['content-type', 'text/html; charset=utf-8'], ['cache-control', 'no-cache']] });
    });
  }

  app.get('/assets/:file', async (c) => {
    const file = c.req.param('file');
    const m = ASSET_NAME.exec(file);
    let body: Buffer | undefined;
    if (m) body = await readFile(join(dir, 'assets', file)).catch(() => undefined);
    if (!m || !body) return new Response(`no such console file: /assets/${file.slice(0, 100)}\n`, { status: 404, headers: [...CONSOLE_HEADERS, ['content-type', 'text/plain; charset=utf-8'], ['cache-control', 'no-store']] });
    return new Response(new Uint8Array(body), { status: 200, headers: [...CONSOLE_HEADERS, ['content-type', TYPES[m[1]!]!], ['cache-control', 'public, max-age=31536000, immutable']] });
  });

  return app;
}

function notBuilt(relayUrl: URL, path: string): Response {
  const url = relayUrl.origin;
  const about = `tunn relay for ${relayUrl.hostname}\nExpose a service: tunn <port> --relay ${url}\nSign in: ${url}/login\n`;
  const text = path === '/' ? `${about}\nThe web console is not built here: run \`npm run build:web\` in the tunn checkout.\n` : 'The web console is not built on this relay: run `npm run build:web` in the tunn checkout, then reload.\n';
  return new Response(text, { status: path === '/' ? 200 : 503, headers: [...CONSOLE_HEADERS, ['content-type', 'text/plain; charset=utf-8'], ['cache-control', 'no-cache']] });
}
