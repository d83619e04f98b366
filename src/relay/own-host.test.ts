import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RelayMetrics } from './metrics.ts';
import { createOwnHostApp, type OwnHostOptions } from './own-host.ts';
import { pages } from './pages.ts';

// The relay's own host in-process (app.request), with the client address node:http would give.

const from = (ip: string) => ({ incoming: { socket: { remoteAddress: ip } } });

function app(over: Partial<OwnHostOptions> = {}) {
  return createOwnHostApp({ domain: 'tunn.example.com', url: () => 'https://tunn.example.com', metrics: new RelayMetrics(), metricsToken: 'sekrit-metrics-token', api: () => undefined, ...over });
}

describe('own host', () => {
  it('answers health', async () => {
    const a = app();
    assert.equal(await (await a.request('/healthz', {}, from('203.0.113.9'))).text(), 'ok\n');
  });

  // Guards: metrics are not public; loopback or the bearer token only.
  it('serves metrics to loopback or with the metrics token, and tells others how to get them', async () => {
    const a = app();
    assert.equal((await a.request('/metrics', {}, from('::ffff:127.0.0.1'))).status, 200);
    const refused = await a.request('/metrics', {}, from('203.0.113.9'));
    assert.equal(refused.status, 403);
    assert.match(await refused.text(), /loopback clients, or with Authorization: Bearer <--metrics-token>/);
    assert.equal((await a.request('/metrics', { headers: { authorization: 'Bearer wrong' } }, from('203.0.113.9'))).status, 403);
    assert.equal((await a.request('/metrics', { headers: { authorization: 'Bearer sekrit-metrics-token' } }, from('203.0.113.9'))).status, 200);
  });

  it('says the relay is starting until the API is up, then hands other paths to it', async () => {
    let api: ((req: Request) => Response) | undefined;
    const a = app({ api: () => api });
    const starting = await a.request('/login', {}, from('127.0.0.1'));
    assert.equal(starting.status, 503);
    assert.equal(await starting.text(), 'the relay is starting\n');
    api = (req) => new Response(`api ${new URL(req.url).pathname}`);
    assert.equal(await (await a.request('/login', {}, from('127.0.0.1'))).text(), 'api /login');
    // `/` is the web console's, served by the API app (src/api/console.ts).
    assert.equal(await (await a.request('/', {}, from('127.0.0.1'))).text(), 'api /');
  });

  it('serves a mounted app under its path (the console), before the API', async () => {
    const a = app({ api: () => () => new Response('api'), mounts: [{ path: '/console', fetch: (req) => new Response(`console ${new URL(req.url).pathname}`) }] });
    assert.equal(await (await a.request('/console', {}, from('127.0.0.1'))).text(), 'console /console');
    assert.equal(await (await a.request('/console/app.js', {}, from('127.0.0.1'))).text(), 'console /console/app.js');
    assert.equal(await (await a.request('/consoles', {}, from('127.0.0.1'))).text(), 'api');
  });
});

describe('relay pages', () => {
  // Guards: the redirect page of the plain-HTTP port shows the visitor's path; it must not
  // become markup (found reading relay.ts: it was put in the page unescaped).
  it('escapes the visitor’s path in the HTTPS redirect page and sends the page headers', () => {
    const r = pages.movedToHttps('https://app.tunn.example.com/"><script>alert(1)</script>');
    const body = String(r.body);
    assert.ok(!body.includes('<script>'), body);
    assert.match(body, /href="https:\/\/app\.tunn\.example\.com\/&quot;&gt;&lt;script&gt;/);
    const headers = Object.fromEntries(r.headers.map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(headers.location, 'https://app.tunn.example.com/"><script>alert(1)</script>');
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.match(headers['content-security-policy']!, /default-src 'none'/);
    assert.equal(r.status, 308);
  });

  it('tells the visitor and owner what to do when the agent does not serve the stream’s kind', () => {
    const body = String(pages.targetDown('STREAM_KIND').body);
    assert.match(body, /\(STREAM_KIND\)/);
    assert.match(body, /update tunn on the agent’s machine/);
  });
});
