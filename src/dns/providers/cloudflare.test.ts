import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { isTunnError } from '../../lib/errors.ts';
import { DnsServer, authoritativeHandler } from '../server.ts';
import { Zone } from '../zone.ts';
import { freePort } from '../../../test/support/ports.ts';
import { checkDnsProvider, type CheckStep } from './check.ts';
import { CloudflareProvider } from './cloudflare.ts';

// The Cloudflare provider against a local server that answers as Cloudflare's API v4 documents
// (https://developers.cloudflare.com/api/): the { success, errors, messages, result } envelope,
// GET /user/tokens/verify, GET /zones?name=, POST/GET/DELETE /zones/:id/dns_records, and the
// documented error bodies (1000 Invalid API Token, 9109 Invalid access token, 10000 Authentication
// error, 7003 no such zone). Records it creates are served by a real DNS server on loopback, so
// "visible" is a real DNS question. Cloudflare itself cannot be reached from here.

const GOOD = 'cf-good-token-0123456789';
const READONLY = 'cf-readonly-token-0123456789';
const BAD = 'cf-revoked-token-0123456789';

interface Rec {
  id: string;
  type: string;
  name: string;
  content: string;
  ttl: number;
}

describe('Cloudflare provider against a server speaking the documented API', () => {
  const dnsZone = new Zone('example.com');
  let dns: DnsServer;
  let api: Server;
  let apiUrl: string;
  let records: Rec[];
  let seen: { method: string; url: string; auth: string | undefined; body?: unknown }[];
  let nextId = 1;

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, status: number, code: number, message: string) => send(res, status, { success: false, errors: [{ code, message }], messages: [], result: null });
  const ok = (res: ServerResponse, result: unknown) => send(res, 200, { success: true, errors: [], messages: [], result });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw = '';
    for await (const c of req) raw += String(c);
    const url = new URL(req.url!, 'http://x');
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body: raw ? JSON.parse(raw) : undefined });
    if (url.pathname === '/client/v4/user/tokens/verify') {
      if (token === GOOD || token === READONLY) return ok(res, { id: 'tok1', status: 'active' });
      return fail(res, 401, 1000, 'Invalid API Token');
    }
    if (token !== GOOD && token !== READONLY) return fail(res, 403, 9109, 'Invalid access token');
    if (url.pathname === '/client/v4/zones' && req.method === 'GET') {
      const name = url.searchParams.get('name');
      return ok(res, name === 'example.com' ? [{ id: 'zone-1', name: 'example.com', status: 'active', name_servers: ['ada.ns.cloudflare.com', 'bob.ns.cloudflare.com'] }] : []);
    }
    const m = /^\/client\/v4\/zones\/([^/]+)\/dns_records(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m || m[1] !== 'zone-1') return fail(res, 404, 7003, `Could not route to ${url.pathname}, perhaps your object identifier is invalid?`);
    if (req.method === 'GET') return ok(res, records.filter((r) => r.type === url.searchParams.get('type') && r.name === url.searchParams.get('name')));
    if (token === READONLY) return fail(res, 403, 10000, 'Authentication error');
    if (req.method === 'POST') {
      const b = JSON.parse(raw) as Omit<Rec, 'id'>;
      const rec = { ...b, id: `rec-${nextId++}` };
      records.push(rec);
      dnsZone.add({ name: rec.name, type: 'TXT', value: rec.content.replace(/^"|"$/g, ''), ttl: 0 });
      return ok(res, rec);
    }
    if (req.method === 'DELETE' && m[2]) {
      const rec = records.find((r) => r.id === m[2]);
      if (!rec) return fail(res, 404, 81044, 'Record does not exist.');
      records = records.filter((r) => r !== rec);
      dnsZone.remove(rec.name, 'TXT', rec.content.replace(/^"|"$/g, ''));
      return ok(res, { id: rec.id });
    }
    return fail(res, 405, 10405, 'Method not allowed');
  }

  const make = (token: string, zone = 'tunn.example.com') =>
    new CloudflareProvider({ zone, token, apiUrl, resolver: { host: '127.0.0.1', port: dns.port }, timeoutMs: 3000, wait: { timeoutMs: 3000, pollMs: 50 } });
  const txt = (name: string) => dnsZone.records(name).filter((r) => r.type === 'TXT').map((r) => r.value).sort();

  before(async () => {
    dns = new DnsServer({ handler: authoritativeHandler([dnsZone]), authoritative: true });
    await dns.listen(0, '127.0.0.1');
    api = createServer((req, res) => void handle(req, res).catch((err: Error) => fail(res, 500, 0, err.message)));
    api.listen(0, '127.0.0.1');
    await once(api, 'listening');
    apiUrl = `http://127.0.0.1:${(api.address() as { port: number }).port}/client/v4`;
  });
  beforeEach(() => {
    records = [];
    seen = [];
  });
  after(async () => {
    api?.close();
    await dns?.close();
  });

  it('finds the zone by name (the relay domain, then its parent), creates by POST and deletes by id only the value it wrote', async () => {
    const cf = make(GOOD);
    const name = '_acme-challenge.tunn.example.com';
    await Promise.all([cf.present(name, 'apex'), cf.present(name, 'wildcard')]);
    await cf.waitVisible(name, 'apex');
    await cf.waitVisible(name, 'wildcard');
    assert.deepEqual(txt(name), ['apex', 'wildcard']);
    const posts = seen.filter((s) => s.method === 'POST');
    assert.deepEqual(posts[0]!.body, { type: 'TXT', name, content: posts[0]!.body && (posts[0]!.body as Rec).content, ttl: 60 });
    assert.match((posts[0]!.body as Rec).content, /^"(apex|wildcard)"$/);
    assert.ok(seen.every((s) => s.auth === `Bearer ${GOOD}`));
    assert.deepEqual(seen.filter((s) => s.url.startsWith('/client/v4/zones?')).map((s) => s.url), ['/client/v4/zones?name=tunn.example.com', '/client/v4/zones?name=example.com']);
    await cf.cleanup(name, 'apex');
    assert.deepEqual(txt(name), ['wildcard']);
    assert.equal(seen.filter((s) => s.method === 'DELETE').length, 1);
    assert.match(seen.find((s) => s.method === 'DELETE')!.url, /^\/client\/v4\/zones\/zone-1\/dns_records\/rec-\d+$/);
    // A relay restarted between present and cleanup has no id: it lists and deletes only the matching value.
    await make(GOOD).cleanup(name, 'wildcard');
    assert.deepEqual(txt(name), []);
    assert.deepEqual(records, []);
  });

  it('tunn relay dns check: writes, sees and deletes a test record', async () => {
    const steps: CheckStep[] = [];
    await checkDnsProvider(make(GOOD), (s) => steps.push(s));
    assert.deepEqual(steps.map((s) => s.step), ['present', 'visible', 'cleanup']);
    assert.equal(steps[0]!.name, '_tunn-dns-check.tunn.example.com');
    assert.deepEqual(records, []);
  });

  it('a token Cloudflare does not accept: says so and where the token comes from, never quoting it', async () => {
    await assert.rejects(make(BAD).present('_acme-challenge.tunn.example.com', 'x'), (e) =>
      isTunnError(e, 'FORBIDDEN') && /looking up the Cloudflare zone of tunn\.example\.com: Cloudflare refused the API token \(code 1000: Invalid API Token\): check the token in --cloudflare-token-file \(or TUNN_CLOUDFLARE_TOKEN\)/.test(e.message) && !e.message.includes(BAD));
    await assert.rejects(make(BAD).verifyToken(), (e) => isTunnError(e, 'FORBIDDEN') && /Invalid API Token/.test(e.message));
  });

  it('a valid token without DNS edit permission: names the permission and the zone', async () => {
    await assert.rejects(make(READONLY).present('_acme-challenge.tunn.example.com', 'x'), (e) =>
      isTunnError(e, 'FORBIDDEN') && /adding TXT _acme-challenge\.tunn\.example\.com in Cloudflare zone example\.com: the API token is valid but may not do this \(code 10000: Authentication error\): give it Zone → DNS → Edit for zone example\.com/.test(e.message));
  });

  it('a domain in no zone the token can see: says which names were asked', async () => {
    await assert.rejects(make(GOOD, 'tunn.elsewhere.org').present('_acme-challenge.tunn.elsewhere.org', 'x'), (e) =>
      isTunnError(e, 'NOT_FOUND') && /no Cloudflare zone for tunn\.elsewhere\.org or a parent \(tunn\.elsewhere\.org, elsewhere\.org\) is visible to this API token/.test(e.message));
  });

  it('an API that is not there, and an http:// API URL off loopback (the token would travel in the clear)', async () => {
    const port = await freePort();
    const gone = new CloudflareProvider({ zone: 'tunn.example.com', token: GOOD, apiUrl: `http://127.0.0.1:${port}/client/v4`, timeoutMs: 2000 });
    await assert.rejects(gone.present('_acme-challenge.tunn.example.com', 'x'), (e) => isTunnError(e, 'UNAVAILABLE') && e.message.includes(`cannot reach the Cloudflare API at http://127.0.0.1:${port}/client/v4: connect ECONNREFUSED`));
    assert.throws(() => new CloudflareProvider({ zone: 'z.example', token: GOOD, apiUrl: 'http://api.example.net/client/v4' }), (e) => isTunnError(e, 'CONFIG_INVALID') && /must be https:\/\//.test(e.message));
  });
});
