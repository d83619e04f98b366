import assert from 'node:assert/strict';
import { once } from 'node:events';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseTarget } from '../target.ts';
import { parseInspectAddress } from './address.ts';
import { startInspector, type Inspector } from './index.ts';

// The inspector's server in-process on 127.0.0.1:0, with a real target for replays. Each
// refusal below guards a property named in its test.

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

function call(port: number, path: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: o.method ?? 'GET', headers: { host: `127.0.0.1:${port}`, ...o.headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

describe('inspector server', () => {
  let target: http.Server;
  let inspector: Inspector;
  let port: number;
  const seen: { method: string; url: string; headers: IncomingHttpHeaders; body: string }[] = [];
  let auth: Record<string, string>;

  before(async () => {
    target = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`hello ${req.method} ${req.url}`);
      });
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    inspector = await startInspector({ address: { host: '127.0.0.1', port: 0 }, targets: [parseTarget(`127.0.0.1:${(target.address() as AddressInfo).port}`)], verifyTargetTls: true, showSecrets: false });
    port = Number(new URL(inspector.origin).port);
    auth = { authorization: `Bearer ${inspector.secret}` };
    // One real captured exchange: a JSON POST with a password and a bearer token, and an SVG answer.
    const w = inspector.watch(0, () => 'app.tunn.test', '198.51.100.7');
    const body = '{"user":"alice","password":"hunter2"}';
    w.request(Buffer.from(`POST /login HTTP/1.1\r\nHost: app.tunn.test\r\nAuthorization: Bearer sekrit\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
    const svg = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>';
    w.response(Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: image/svg+xml\r\nContent-Length: ${svg.length}\r\n\r\n${svg}`));
    w.end();
  });
  after(async () => {
    await inspector.close();
    target.close();
  });

  // DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example.
  it('refuses a request whose Host is not its own address', async () => {
    const r = await call(port, '/api/requests', { headers: { ...auth, host: 'evil.example' } });
    assert.equal(r.status, 403);
    assert.match(JSON.parse(r.text).error.message, /answers only to 127\.0\.0\.1:\d+ or localhost:\d+.*DNS rebinding/);
  });

  // Every local user shares loopback: the per-run secret is required for the API, as a bearer.
  it('refuses its API without the bearer secret, saying where to find it', async () => {
    for (const path of ['/api/requests', '/api/requests/1', '/api/events', '/api/stats', '/api/requests/1/body/request']) {
      const r = await call(port, path);
      assert.equal(r.status, 401, path);
      assert.match(JSON.parse(r.text).error.message, /open the Inspect URL tunn printed \(it ends in #token=…; each run has a new one\), or send 'Authorization: Bearer <secret>'/);
    }
    assert.equal((await call(port, '/api/requests', { headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await call(port, '/api/requests', { headers: { authorization: `Basic ${inspector.secret}` } })).status, 401);
    assert.equal((await call(port, '/api/requests', { headers: auth })).status, 200);
  });

  // Property guarded: the secret is never a cookie. Cookies are not isolated by port (RFC 6265
  // §8.5): a cookie for 127.0.0.1:<inspector> is also sent to the developer's app on
  // 127.0.0.1:8080, which could then read captured traffic and replay it with visitors'
  // credentials. Before the fix, /?token= answered with Set-Cookie and the API took the cookie.
  it('never sends Set-Cookie and takes no cookie as the secret', async () => {
    assert.match(inspector.url, /^http:\/\/127\.0\.0\.1:\d+\/#token=[A-Za-z0-9_-]{32}$/, 'the printed URL carries the secret in the fragment');
    const responses = [
      await call(port, '/'),
      await call(port, `/?token=${inspector.secret}`),
      await call(port, '/app.js'),
      await call(port, '/style.css'),
      await call(port, '/api/requests', { headers: auth }),
      await call(port, '/api/requests'),
      await call(port, '/nope'),
      await call(port, '/', { headers: { host: 'evil.example' } }),
    ];
    for (const r of responses) assert.equal(r.headers['set-cookie'], undefined);
    assert.equal(responses[1]!.status, 200, 'a ?token= in the query is no longer traded for anything');
    const cookie = `tunn_inspect_${port}=${inspector.secret}`;
    assert.equal((await call(port, '/api/requests', { headers: { cookie } })).status, 401, 'a cookie is not the secret');
  });

  // The page itself holds no data, so a browser opening the printed URL gets it without a secret;
  // the Host and same-origin checks still apply to it.
  it('serves its page without the secret, only to its own address and origin', async () => {
    assert.equal((await call(port, '/')).status, 200);
    assert.equal((await call(port, '/', { headers: { host: 'evil.example' } })).status, 403);
    assert.equal((await call(port, '/app.js', { headers: { 'sec-fetch-site': 'cross-site' } })).status, 403);
  });

  // A web page the developer visits must not read or replay captured traffic.
  it('refuses cross-site requests to its API, even with the secret', async () => {
    const x = await call(port, '/api/requests/1/replay', { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' }, body: '{}' });
    assert.equal(x.status, 403);
    assert.match(JSON.parse(x.text).error.message, /cross-site request refused/);
    // Another port on loopback is the same site but not the same origin.
    const other = await call(port, '/api/requests', { headers: { ...auth, origin: 'http://127.0.0.1:1' } });
    assert.equal(other.status, 403);
    const form = await call(port, '/api/requests/1/replay', { method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: '{}' });
    assert.equal(form.status, 415);
    assert.equal(seen.length, 0);
  });

  it('serves its page with a CSP that allows no inline script', async () => {
    const r = await call(port, '/');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-security-policy']), /script-src 'self';/);
    assert.doesNotMatch(String(r.headers['content-security-policy']), /unsafe-inline|unsafe-eval/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.doesNotMatch(r.text, /<script>|\son\w+=/);
  });

  it('shows the capture redacted, never an SVG as an image, and downloads as nosniff attachments', async () => {
    const d = JSON.parse((await call(port, '/api/requests/1', { headers: auth })).text);
    assert.equal(d.clientIp, '198.51.100.7');
    assert.equal(d.visitor, 'public');
    assert.deepEqual(d.requestHeaders.find(([k]: string[]) => k === 'Authorization'), ['Authorization', '[redacted]']);
    assert.equal(d.requestBody.view.kind, 'json');
    assert.doesNotMatch(d.requestBody.view.text, /hunter2/);
    assert.equal(d.responseBody.view.kind, 'text');
    assert.equal((await call(port, '/api/requests/1/body/response?as=image', { headers: auth })).status, 415);
    const dl = await call(port, '/api/requests/1/body/response', { headers: auth });
    assert.match(String(dl.headers['content-disposition']), /^attachment;/);
    assert.equal(dl.headers['content-type'], 'application/octet-stream');
    assert.equal(dl.headers['x-content-type-options'], 'nosniff');
  });

  it('replays to the target as it was (secrets included) and edited, each a new entry marked as a replay', async () => {
    const r = await call(port, '/api/requests/1/replay', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '' });
    assert.equal(r.status, 201);
    const s = JSON.parse(r.text);
    assert.equal(s.replayOf, 1);
    assert.equal(s.status, 200);
    assert.equal(seen.at(-1)!.body, '{"user":"alice","password":"hunter2"}');
    assert.equal(seen.at(-1)!.headers.authorization, 'Bearer sekrit');
    const edit = { method: 'PUT', path: '/edited?x=1', headers: [['Authorization', '[redacted]'], ['Host', 'elsewhere.example'], ['X-Edit', 'yes']], body: 'new body' };
    const e = JSON.parse((await call(port, '/api/requests/1/replay', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(edit) })).text);
    assert.equal(e.replayOf, 1);
    const last = seen.at(-1)!;
    assert.deepEqual([last.method, last.url, last.body, last.headers['x-edit'], last.headers.authorization, last.headers.host], ['PUT', '/edited?x=1', 'new body', 'yes', 'Bearer sekrit', 'elsewhere.example']);
    const list = JSON.parse((await call(port, '/api/requests?path=edited', { headers: auth })).text);
    const w = inspector.watch(0, () => 'app.tunn.test', '198.51.100.7');
    w.request(Buffer.from('GET /cb?token=real-one HTTP/1.1\r\nHost: app.tunn.test\r\n\r\n'));
    w.response(Buffer.from('HTTP/1.1 204 No Content\r\n\r\n'));
    const cb = JSON.parse((await call(port, '/api/requests?path=/cb', { headers: auth })).text).requests[0];
    assert.equal(cb.path, '/cb?token=[redacted]');
    await call(port, `/api/requests/${cb.id}/replay`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ path: cb.path, method: 'GET' }) });
    assert.equal(seen.at(-1)!.url, '/cb?token=real-one', 'an unchanged redacted path replays the original');
    assert.deepEqual(list.requests.map((x: { id: number }) => x.id), [e.id]);
  });

  // Replay goes only to the tunnel's own target.
  it('refuses a replay path that names another destination, saying what to send', async () => {
    const before = seen.length;
    for (const path of ['http://evil.example/', '//evil.example/x', 'evil']) {
      const r = await call(port, '/api/requests/1/replay', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ path }) });
      assert.equal(r.status, 400);
      assert.match(JSON.parse(r.text).error.message, /path must start with a single "\/"/);
    }
    assert.equal(seen.length, before);
  });

  // A slow page loses its live view, never the tunnel its traffic: capture does not wait for it.
  it('cuts off a page that stops reading its live events', async () => {
    const small = await startInspector({ address: { host: '127.0.0.1', port: 0 }, targets: [], verifyTargetTls: true, showSecrets: false, maxEventBacklog: 16 * 1024 });
    try {
      const p = Number(new URL(small.origin).port);
      const res = await new Promise<http.IncomingMessage>((resolve) => http.get({ host: '127.0.0.1', port: p, path: '/api/events', headers: { host: `127.0.0.1:${p}`, authorization: `Bearer ${small.secret}` } }, resolve));
      res.pause();
      const closed = once(res.socket, 'close');
      const w = small.watch(0, () => 'x', '1');
      const long = '/' + 'x'.repeat(8000);
      const started = Date.now();
      for (let i = 0; i < 2000; i++) {
        w.request(Buffer.from(`GET ${long} HTTP/1.1\r\nHost: x\r\n\r\n`));
        w.response(Buffer.from('HTTP/1.1 204 No Content\r\n\r\n'));
        if (i % 100 === 0) await new Promise((r) => setImmediate(r));
      }
      await closed;
      assert.ok(Date.now() - started < 60_000);
      assert.equal(small.store.size, 500, 'capture went on');
    } finally {
      await small.close();
    }
  });

  it('says which address is taken and what to do', async () => {
    await assert.rejects(startInspector({ address: { host: '127.0.0.1', port }, targets: [], verifyTargetTls: true, showSecrets: false }), /cannot listen for the inspector on 127\.0\.0\.1:\d+ \(EADDRINUSE\): pick another with --inspect 127\.0\.0\.1:PORT or turn it off with --no-inspect/);
  });

  it('listens on loopback only', () => {
    assert.deepEqual(parseInspectAddress('4041'), { host: '127.0.0.1', port: 4041 });
    assert.deepEqual(parseInspectAddress('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseInspectAddress(undefined), { host: '127.0.0.1' });
    assert.throws(() => parseInspectAddress('0.0.0.0:4040'), /loopback only \(127\.0\.0\.1 or ::1\), not 0\.0\.0\.0; use --no-inspect/);
    assert.throws(() => parseInspectAddress('192.168.1.5:4040'), /loopback only/);
    assert.throws(() => parseInspectAddress('nonsense'), /use a port \(4041\) or a loopback address/);
  });
});
