import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GateDecision, TunnelPolicy } from './gate.ts';
import { account, gateRequest, identityFixture } from '../../test/fixtures/identity.ts';

// The gate's refusals (IP not allowed, rate limit, basic auth, access cannot be checked) in
// the form the client reads: a page in tunn's template for a browser (Accept: text/html),
// JSON { error: { code, message } } for an API client; each says what happened and what to
// do, and the page shows the request id the gateway logged.

type Id = Awaited<ReturnType<typeof identityFixture>>;
const HTML = 'text/html,application/xhtml+xml,*/*;q=0.8';

function respond(d: GateDecision): Extract<GateDecision, { kind: 'respond' }> {
  assert.equal(d.kind, 'respond');
  return d as Extract<GateDecision, { kind: 'respond' }>;
}
function hdr(d: GateDecision, name: string): string | undefined {
  return respond(d).headers.find(([n]) => n === name)?.[1];
}

/** The page is tunn's template with its security headers, naming the request id. */
function assertPage(d: GateDecision, status: number, title: RegExp, todo: RegExp, requestId: string): string {
  const r = respond(d);
  assert.equal(r.status, status);
  assert.equal(hdr(d, 'content-type'), 'text/html; charset=utf-8');
  // Security property: refusal pages get the sign-in pages' headers (no script runs, no
  // sniffing the body as another type, not framed).
  assert.match(hdr(d, 'content-security-policy')!, /default-src 'none'.*frame-ancestors 'none'/);
  assert.equal(hdr(d, 'x-content-type-options'), 'nosniff');
  const body = String(r.body);
  assert.match(body, new RegExp(`<h1>${title.source}</h1>`));
  assert.match(body, todo);
  assert.match(body, new RegExp(`${status} [A-Z][a-z].* · request id <code>${requestId}</code>`));
  return body;
}

function assertJson(d: GateDecision, status: number, code: string, message: RegExp): void {
  const r = respond(d);
  assert.equal(r.status, status);
  assert.equal(hdr(d, 'content-type'), 'application/json');
  const e = JSON.parse(String(r.body)).error;
  assert.equal(e.code, code);
  assert.match(e.message, message);
}

describe('Gate refusals: a page for browsers, JSON for API clients', () => {
  let id: Id;
  let t: TunnelPolicy;
  before(async () => {
    id = await identityFixture();
    const owner = await account(id, 'owner@example.com');
    t = { tunnelId: 'r1', ownerAccountId: owner.id, ownerEmail: owner.email, allow: [], public: true };
  });
  after(() => id.close());

  it('IP not allowed: 403 naming the address and --allow-ip', async () => {
    const tt = { ...t, allowIps: ['10.0.0.0/8'] };
    const page = await id.gate.check(gateRequest({ clientIp: '192.0.2.7', accept: HTML, requestId: 'ipReq123' }), tt);
    const body = assertPage(page, 403, /Your network is not allowed here/, /ask the owner of this tunnel to add your address with <code>--allow-ip<\/code>/, 'ipReq123');
    assert.match(body, /<code>192\.0\.2\.7<\/code>/);
    const api = await id.gate.check(gateRequest({ clientIp: '192.0.2.7', accept: 'application/json' }), tt);
    assertJson(api, 403, 'IP_NOT_ALLOWED', /your IP address \(192\.0\.2\.7\) is not allowed/);
    // No Accept at all (curl's default is */*): JSON, not a page.
    assertJson(await id.gate.check(gateRequest({ clientIp: '192.0.2.7' }), tt), 403, 'IP_NOT_ALLOWED', /not allowed/);
  });

  it('rate limited: 429 with Retry-After, the limit and how long to wait', async () => {
    const tt = { ...t, tunnelId: 'r2', rateLimit: { perIp: 1 } };
    assert.equal((await id.gate.check(gateRequest({ clientIp: '10.9.9.9', accept: HTML }), tt)).kind, 'allow');
    const page = await id.gate.check(gateRequest({ clientIp: '10.9.9.9', accept: HTML, requestId: 'rl-req' }), tt);
    assertPage(page, 429, /Too many requests/, /at most 1 request a minute per client IP.*Wait \d+ s, then reload the page/s, 'rl-req');
    assert.match(hdr(page, 'retry-after')!, /^\d+$/);
    const api = await id.gate.check(gateRequest({ clientIp: '10.9.9.9', accept: 'application/json' }), tt);
    assertJson(api, 429, 'RATE_LIMITED', /limit per client IP: 1 per minute\); retry in \d+ s/);
    assert.match(hdr(api, 'retry-after')!, /^\d+$/);
  });

  it('basic auth: 401 with the Basic challenge; a wrong password is told apart from none', async () => {
    const tt = { ...t, basicAuth: { user: 'u', pass: 'p' } };
    const none = await id.gate.check(gateRequest({ accept: HTML, requestId: 'ba1' }), tt);
    assertPage(none, 401, /This tunnel needs a password/, /enter the credentials the owner of this tunnel gave you/, 'ba1');
    assert.match(hdr(none, 'www-authenticate')!, /^Basic realm="tunn"/);
    const wrong = await id.gate.check(gateRequest({ accept: HTML, authorization: 'Basic ' + Buffer.from('u:x').toString('base64'), requestId: 'ba2' }), tt);
    assert.match(assertPage(wrong, 401, /This tunnel needs a password/, /Reload the page/, 'ba2'), /was not right/);
    const api = await id.gate.check(gateRequest({ accept: 'application/json' }), tt);
    assertJson(api, 401, 'AUTH_REQUIRED', /user name and password/);
    assert.match(hdr(api, 'www-authenticate')!, /^Basic/);
  });

  it('access that cannot be checked fails closed with 503, a page saying to retry, or JSON', async () => {
    // An allow-list that skipped validation makes the decision throw: the gate fails closed.
    const tt = { ...t, allowIps: ['not an address'] };
    const page = await id.gate.check(gateRequest({ accept: HTML, requestId: 'down1' }), tt);
    assertPage(page, 503, /Access cannot be checked right now/, /Try again in a few seconds/, 'down1');
    assert.equal(hdr(page, 'retry-after'), '5');
    assertJson(await id.gate.check(gateRequest({ accept: 'application/json' }), tt), 503, 'UNAVAILABLE', /try again shortly/);
  });
});
