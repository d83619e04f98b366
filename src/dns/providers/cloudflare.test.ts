import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { CF_BAD as BAD, CF_GOOD as GOOD, CF_READONLY as READONLY, startCloudflareApi, type CloudflareApi } from '../../../test/support/cloudflare-api.ts';
import { freePort } from '../../../test/support/ports.ts';
import { isTunnError } from '../../lib/errors.ts';
import { checkDnsProvider, type CheckStep } from './check.ts';
import { CloudflareProvider } from './cloudflare.ts';

// The Cloudflare provider against a local server that answers as Cloudflare's API v4 documents
// (test/support/cloudflare-api.ts: the envelope, the five calls, the documented error bodies),
// whose records a real DNS server on loopback answers. Cloudflare itself cannot be reached from here.

describe('Cloudflare provider against a server speaking the documented API', () => {
  let cf: CloudflareApi;
  const make = (token: string, zone = 'tunn.example.com') =>
    new CloudflareProvider({ zone, token, apiUrl: cf.url, resolver: { host: '127.0.0.1', port: cf.dnsPort }, timeoutMs: 3000, wait: { timeoutMs: 3000, pollMs: 50 } });

  before(async () => {
    cf = await startCloudflareApi('example.com');
  });
  beforeEach(() => cf.reset());
  after(async () => {
    await cf?.close();
  });

  it('finds the zone by name (the relay domain, then its parent), creates by POST and deletes by id only the value it wrote', async () => {
    const p = make(GOOD);
    const name = '_acme-challenge.tunn.example.com';
    await Promise.all([p.present(name, 'apex'), p.present(name, 'wildcard')]);
    await p.waitVisible(name, 'apex');
    await p.waitVisible(name, 'wildcard');
    assert.deepEqual(cf.txt(name), ['apex', 'wildcard']);
    const posts = cf.seen.filter((s) => s.method === 'POST');
    const body = posts[0]!.body as { type: string; name: string; content: string; ttl: number };
    assert.deepEqual({ type: body.type, name: body.name, ttl: body.ttl }, { type: 'TXT', name, ttl: 60 });
    assert.match(body.content, /^"(apex|wildcard)"$/);
    assert.ok(cf.seen.every((s) => s.auth === `Bearer ${GOOD}`));
    assert.deepEqual(cf.seen.filter((s) => s.url.startsWith('/client/v4/zones?')).map((s) => s.url), ['/client/v4/zones?name=tunn.example.com', '/client/v4/zones?name=example.com']);
    await p.cleanup(name, 'apex');
    assert.deepEqual(cf.txt(name), ['wildcard']);
    assert.equal(cf.seen.filter((s) => s.method === 'DELETE').length, 1);
    assert.match(cf.seen.find((s) => s.method === 'DELETE')!.url, /^\/client\/v4\/zones\/zone-1\/dns_records\/rec-\d+$/);
    // A relay restarted between present and cleanup has no id: it lists and deletes only the matching value.
    await make(GOOD).cleanup(name, 'wildcard');
    assert.deepEqual(cf.txt(name), []);
    assert.deepEqual(cf.records, []);
  });

  it('tunn relay dns check: writes, sees and deletes a test record', async () => {
    const steps: CheckStep[] = [];
    await checkDnsProvider(make(GOOD), (s) => steps.push(s));
    assert.deepEqual(steps.map((s) => s.step), ['present', 'visible', 'cleanup']);
    assert.equal(steps[0]!.name, '_tunn-dns-check.tunn.example.com');
    assert.deepEqual(cf.records, []);
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
