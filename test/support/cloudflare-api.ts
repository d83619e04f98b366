import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { DnsServer, authoritativeHandler } from '../../src/dns/server.ts';
import { Zone } from '../../src/dns/zone.ts';

// A local server that answers as Cloudflare's API v4 documents (https://developers.cloudflare.com/api/):
// the { success, errors, messages, result } envelope, GET /user/tokens/verify, GET /zones?name=,
// POST/GET/DELETE /zones/:id/dns_records, and the documented error bodies (1000 Invalid API
// Token, 9109 Invalid access token, 10000 Authentication error, 7003 no such zone). The TXT
// records it holds are served by a real DNS server on loopback (`dnsPort`), so "visible" is a
// real DNS question. Cloudflare itself cannot be reached from the test machines.

export const CF_GOOD = 'cf-good-token-0123456789';
export const CF_READONLY = 'cf-readonly-token-0123456789';
export const CF_BAD = 'cf-revoked-token-0123456789';

export interface CfRecord {
  id: string;
  type: string;
  name: string;
  content: string;
  ttl: number;
}

export interface CloudflareApi {
  /** e.g. http://127.0.0.1:PORT/client/v4 */
  url: string;
  /** The DNS server answering the zone's records (for `--dns-resolver`). */
  dnsPort: number;
  /** The zone's records as the API holds them. */
  records: CfRecord[];
  /** Every request: method, URL, Authorization header, JSON body. */
  seen: { method: string; url: string; auth: string | undefined; body?: unknown }[];
  /** TXT values the DNS server answers for `name`. */
  txt(name: string): string[];
  reset(): void;
  close(): Promise<void>;
}

/** Serves zone `zoneName` (id zone-1) to the tokens CF_GOOD (may edit) and CF_READONLY (may read). */
export async function startCloudflareApi(zoneName = 'example.com'): Promise<CloudflareApi> {
  const zone = new Zone(zoneName);
  const dns = new DnsServer({ handler: authoritativeHandler([zone]), authoritative: true });
  await dns.listen(0, '127.0.0.1');
  let nextId = 1;
  const unquote = (s: string) => s.replace(/^"|"$/g, '');
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, status: number, code: number, message: string) => send(res, status, { success: false, errors: [{ code, message }], messages: [], result: null });
  const ok = (res: ServerResponse, result: unknown) => send(res, 200, { success: true, errors: [], messages: [], result });

  const api: Omit<CloudflareApi, 'url'> & { url: string } = {
    url: '',
    dnsPort: dns.port,
    records: [],
    seen: [],
    txt: (name) => zone.records(name).filter((r) => r.type === 'TXT').map((r) => r.value).sort(),
    reset() {
      for (const r of api.records) zone.remove(r.name, 'TXT', unquote(r.content));
      api.records.length = 0;
      api.seen.length = 0;
    },
    async close() {
      server.close();
      await dns.close();
    },
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw = '';
    for await (const c of req) raw += String(c);
    const url = new URL(req.url!, 'http://x');
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    api.seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body: raw ? JSON.parse(raw) : undefined });
    if (url.pathname === '/client/v4/user/tokens/verify') {
      if (token === CF_GOOD || token === CF_READONLY) return ok(res, { id: 'tok1', status: 'active' });
      return fail(res, 401, 1000, 'Invalid API Token');
    }
    if (token !== CF_GOOD && token !== CF_READONLY) return fail(res, 403, 9109, 'Invalid access token');
    if (url.pathname === '/client/v4/zones' && req.method === 'GET') {
      return ok(res, url.searchParams.get('name') === zoneName ? [{ id: 'zone-1', name: zoneName, status: 'active', name_servers: ['ada.ns.cloudflare.com', 'bob.ns.cloudflare.com'] }] : []);
    }
    const m = /^\/client\/v4\/zones\/([^/]+)\/dns_records(?:\/([^/]+))?$/.exec(url.pathname);
    if (!m || m[1] !== 'zone-1') return fail(res, 404, 7003, `Could not route to ${url.pathname}, perhaps your object identifier is invalid?`);
    if (req.method === 'GET') return ok(res, api.records.filter((r) => r.type === url.searchParams.get('type') && r.name === url.searchParams.get('name')));
    if (token === CF_READONLY) return fail(res, 403, 10000, 'Authentication error');
    if (req.method === 'POST') {
      const rec = { ...(JSON.parse(raw) as Omit<CfRecord, 'id'>), id: `rec-${nextId++}` };
      api.records.push(rec);
      zone.add({ name: rec.name, type: 'TXT', value: unquote(rec.content), ttl: 0 });
      return ok(res, rec);
    }
    if (req.method === 'DELETE' && m[2]) {
      const i = api.records.findIndex((r) => r.id === m[2]);
      if (i < 0) return fail(res, 404, 81044, 'Record does not exist.');
      const [rec] = api.records.splice(i, 1);
      zone.remove(rec!.name, 'TXT', unquote(rec!.content));
      return ok(res, { id: rec!.id });
    }
    return fail(res, 405, 10405, 'Method not allowed');
  }

  const server = createServer((req, res) => void handle(req, res).catch((err: Error) => fail(res, 500, 0, err.message)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  api.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/client/v4`;
  return api;
}
