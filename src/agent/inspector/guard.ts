import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

// Who may talk to the inspector. It listens on loopback, which every local user and every web
// page the developer visits can reach, so each request must: name the inspector's own address
// in Host (DNS rebinding), not come from another site — another port on 127.0.0.1 is
// "same-site", so the check is for the same origin, by Sec-Fetch-Site and Origin — and, for the
// API, carry the per-run secret as `Authorization: Bearer`. Never a cookie: cookies are not
// isolated by port (RFC 6265 §8.5), so every other listener on 127.0.0.1 (the developer's own
// app included) would receive it. The page keeps the secret in sessionStorage (its origin only).

export interface GuardContext {
  /** host:port values a request's Host may be ("127.0.0.1:4040", "localhost:4040"). */
  hosts: Set<string>;
  /** The origins a browser request may come from ("http://127.0.0.1:4040", …). */
  origins: Set<string>;
  secret: string;
}

export interface Refusal {
  status: 400 | 401 | 403 | 415;
  message: string;
}

export function guardContext(host: string, port: number, secret: string): GuardContext {
  const h = host.includes(':') ? `[${host}]` : host;
  const names = [h];
  if (host === '127.0.0.1' || host === '::1') names.push('localhost');
  return {
    hosts: new Set(names.map((n) => `${n}:${port}`)),
    origins: new Set(names.map((n) => `http://${n}:${port}`)),
    secret,
  };
}

/** The first reason to refuse `req`, or null. The page's static files (no data) need no secret. */
export function refuse(req: IncomingMessage, g: GuardContext, needsSecret: boolean): Refusal | null {
  const host = (req.headers.host ?? '').toLowerCase();
  if (!g.hosts.has(host)) return { status: 403, message: `the inspector answers only to ${[...g.hosts].join(' or ')}; this request named host "${host}" (DNS rebinding is refused): open the address tunn printed` };
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return { status: 403, message: `cross-site request refused (Sec-Fetch-Site: ${site}): only the inspector's own page may use its API` };
  const origin = req.headers.origin;
  if (origin !== undefined && !g.origins.has(origin)) return { status: 403, message: `request from origin ${origin} refused: only the inspector's own page may use its API` };
  if (needsSecret && !hasSecret(req, g)) return { status: 401, message: "missing or wrong inspector secret: open the Inspect URL tunn printed (it ends in #token=…; each run has a new one), or send 'Authorization: Bearer <secret>'" };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    // A cross-site form can POST only "simple" types; requiring JSON forces a preflight we never grant.
    const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (req.method !== 'DELETE' && ct !== 'application/json') return { status: 415, message: 'send the request body as JSON (Content-Type: application/json)' };
  }
  return null;
}

export function hasSecret(req: IncomingMessage, g: GuardContext): boolean {
  const auth = req.headers.authorization;
  return auth !== undefined && /^bearer /i.test(auth) && same(auth.slice(7).trim(), g.secret);
}

export function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
