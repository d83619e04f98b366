import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { account, identityFixture } from '../../test/fixtures/identity.ts';
import { createApiApp, type ApiApp } from './app.ts';

// The API contract's refusals: every body, query and path parameter goes through a zod schema,
// and a refusal is 400 { error: { code: 'INVALID_INPUT', message } } naming the field and what
// it must be. Bad input changes nothing.

type Id = Awaited<ReturnType<typeof identityFixture>>;

describe('/v1 input validation', () => {
  let id: Id;
  let app: ApiApp;
  let auth: Record<string, string>;
  let me: { id: string; email: string };
  const call = async (method: string, path: string, body?: string, headers: Record<string, string> = { 'content-type': 'application/json' }) => {
    const res = await app.request(path, { method, headers: { ...auth, ...headers }, body });
    return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } & Record<string, unknown> };
  };
  const refused = async (method: string, path: string, body: string | undefined, message: RegExp, headers?: Record<string, string>) => {
    const r = await call(method, path, body, headers);
    assert.equal(r.status, 400, `${method} ${path} ${body}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error?.code, 'INVALID_INPUT');
    assert.match(r.body.error!.message, message);
  };

  before(async () => {
    id = await identityFixture();
    app = createApiApp(id);
    me = await account(id, 'me@example.com');
    auth = { authorization: `Bearer ${(await id.tokens.issue({ accountId: me.id, kind: 'pat', email: me.email })).token}` };
  });
  after(() => id.close());

  it('names the field and what it must be', async () => {
    await refused('POST', '/v1/groups', JSON.stringify({}), /^"name" is missing \(a string\)$/);
    await refused('POST', '/v1/groups', JSON.stringify({ name: 7 }), /^"name" must be a string$/);
    await refused('POST', '/v1/groups', JSON.stringify({ name: '' }), /^"name" must be a non-empty string$/);
    await refused('POST', '/v1/groups', JSON.stringify({ name: 'x'.repeat(65) }), /^"name" is too long \(at most 64 characters\)$/);
    await refused('POST', '/v1/groups', JSON.stringify({ name: 'eng', emails: 'a@x.com' }), /^"emails" must be an array$/);
    await refused('POST', '/v1/groups', JSON.stringify({ name: 'eng', emails: ['a@x.com', 3] }), /^"emails" must be an array of strings$/);
    await refused('POST', '/v1/groups', JSON.stringify([1]), /^the request body must be a JSON object$/);
    await refused('POST', '/v1/domains', JSON.stringify({ domain: 'shop.example.com', verify: 'no' }), /^"verify" must be true or false$/);
    await refused('POST', '/v1/grants', JSON.stringify({ host: 'a.tunn.localhost', who: 'b@x.com' }), /^"for" is missing \(a string\)$/);
    const list = (await call('GET', '/v1/groups')).body as { groups: unknown[] };
    assert.deepEqual(list.groups, [], 'nothing was created');
  });

  it('says what to send when the body is not JSON', async () => {
    await refused('POST', '/v1/groups', '{nope', /^the request body is not valid JSON \(/);
    await refused('POST', '/v1/groups', 'name=eng', /^send the request body as JSON with Content-Type: application\/json \(got "application\/x-www-form-urlencoded"\)$/, { 'content-type': 'application/x-www-form-urlencoded' });
    await refused('POST', '/v1/tokens', '{"name":"x"}', /got "text\/plain"/, { 'content-type': 'text/plain' });
  });

  it('takes an empty body as {} (curl -X POST sends none), and refuses a body over 1 MiB', async () => {
    const empty = await app.request('/v1/tokens', { method: 'POST', headers: auth });
    assert.equal(empty.status, 201);
    assert.equal(((await empty.json()) as { name: string }).name, 'personal access token');
    const big = await call('POST', '/v1/groups', JSON.stringify({ name: 'big', emails: ['a'.repeat(2 * 1024 * 1024)] }));
    assert.equal(big.status, 413);
    assert.equal(big.body.error?.message, 'the request body is larger than 1024 KiB');
  });

  it('checks query strings: event kind, times, limit and cursor', async () => {
    await refused('GET', '/v1/events?kind=nope', undefined, /^"kind" must be one of: login_failed, .*idp_group_removed, connection_cut, host_mismatch, client_cert_refused, not "nope"$/);
    await refused('GET', '/v1/events?since=yesterday', undefined, /^"since" must be an ISO time such as 2026-01-31T00:00:00Z$/);
    await refused('GET', '/v1/events?until=soon', undefined, /^"until" must be an ISO time/);
    await refused('GET', '/v1/events?limit=ten', undefined, /^"limit" must be a whole number$/);
    await refused('GET', '/v1/events?limit=0', undefined, /^"limit" must be at least 1, not "0"$/);
    await refused('GET', '/v1/events?limit=5000', undefined, /^"limit" must be at most 500/);
    await refused('GET', '/v1/events?cursor=garbage', undefined, /^"cursor" is not one this API gave out/);
    await refused('GET', '/v1/tokens?all=yes', undefined, /^"all" must be one of: 0, 1, not "yes"$/);
  });

  it('events: filters by kind, tunnel, email and time, newest first, in pages with a cursor', async () => {
    const t0 = id.manualClock.now();
    for (let i = 0; i < 5; i++) {
      id.manualClock.advance(60_000 * 2);
      await id.events.record({ kind: i % 2 ? 'visitor_denied' : 'ip_denied', accountId: me.id, tunnel: `t${i}.tunn.localhost`, email: `v${i}@x.com`, ip: `198.51.100.${i}` });
    }
    await id.events.record({ kind: 'visitor_denied', accountId: (await account(id, 'other@example.com')).id, tunnel: 'theirs.tunn.localhost' });
    const page1 = (await call('GET', '/v1/events?limit=2')).body as { events: { tunnel: string }[]; next: string | null };
    assert.deepEqual(page1.events.map((e) => e.tunnel), ['t4.tunn.localhost', 't3.tunn.localhost']);
    assert.ok(page1.next);
    const page2 = (await call('GET', `/v1/events?limit=2&cursor=${page1.next}`)).body as { events: { tunnel: string }[]; next: string | null };
    assert.deepEqual(page2.events.map((e) => e.tunnel), ['t2.tunn.localhost', 't1.tunn.localhost']);
    const page3 = (await call('GET', `/v1/events?limit=2&cursor=${page2.next}`)).body as { events: { tunnel: string }[]; next: string | null };
    assert.deepEqual([page3.events.map((e) => e.tunnel), page3.next], [['t0.tunn.localhost'], null]);
    const denied = (await call('GET', '/v1/events?kind=visitor_denied')).body as { events: { tunnel: string }[] };
    assert.deepEqual(denied.events.map((e) => e.tunnel), ['t3.tunn.localhost', 't1.tunn.localhost'], 'only mine, only that kind');
    const byEmail = (await call('GET', '/v1/events?email=V2@x.com')).body as { events: { tunnel: string }[] };
    assert.deepEqual(byEmail.events.map((e) => e.tunnel), ['t2.tunn.localhost']);
    const byTunnel = (await call('GET', '/v1/events?tunnel=t0.tunn.localhost')).body as { events: { tunnel: string }[] };
    assert.equal(byTunnel.events.length, 1);
    const window = (await call('GET', `/v1/events?since=${new Date(t0 + 3 * 60_000).toISOString()}&until=${new Date(t0 + 7 * 60_000).toISOString()}`)).body as { events: { tunnel: string }[] };
    assert.deepEqual(window.events.map((e) => e.tunnel), ['t2.tunn.localhost', 't1.tunn.localhost']);
  });

  it('device login (RFC 8628) takes a form or JSON, and refuses in RFC 8628\'s shape', async () => {
    const form = await app.request('/v1/auth/device', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'client_name=curl' }, { clientIp: '192.0.2.7' });
    assert.equal(form.status, 200);
    const started = (await form.json()) as { device_code: string };
    assert.ok(started.device_code);
    const pending = await app.request('/v1/auth/device/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ device_code: started.device_code }) });
    assert.deepEqual([pending.status, ((await pending.json()) as { error: string }).error], [400, 'authorization_pending']);
    const bad = await app.request('/v1/auth/device', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: 5 }) }, { clientIp: '192.0.2.7' });
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), { error: 'invalid_request', error_description: '"client_name" must be a string' });
  });
});
