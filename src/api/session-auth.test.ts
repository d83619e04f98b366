import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { identityFixture, RELAY_URL } from '../../test/fixtures/identity.ts';
import { createApiApp, type ApiApp } from './app.ts';
import { CSRF_HEADER } from './session-auth.ts';

// The console's cookie access to /v1 (session-auth.ts) and GET /v1/session.

type Id = Awaited<ReturnType<typeof identityFixture>>;
const SAME = { 'sec-fetch-site': 'same-origin' };
const JSON_BODY = { 'content-type': 'application/json' };

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

describe('cookie access to /v1 (the web console)', () => {
  let id: Id;
  let app: ApiApp;
  let cookie: string;
  let csrf: string;
  const req = (path: string, init: RequestInit = {}) => app.request(path, init, { clientIp: '192.0.2.10' });

  before(async () => {
    id = await identityFixture({ dev: true, adminEmails: ['Boss@Example.com'] });
    app = createApiApp(id);
    const login = await req('/login/dev', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: RELAY_URL }, body: new URLSearchParams({ email: 'me@example.com' }) });
    cookie = login.headers.getSetCookie()[0]!.split(';')[0]!;
    const s = await req('/v1/session', { headers: { cookie, ...SAME } });
    assert.equal(s.status, 200);
    assert.equal(s.headers.get('cache-control'), 'no-store');
    const body = (await s.json()) as { email: string; relay: string; csrf: string; admin: boolean };
    assert.deepEqual({ ...body, csrf: typeof body.csrf }, { email: 'me@example.com', relay: RELAY_URL, csrf: 'string', admin: false });
    csrf = body.csrf;
  });
  after(() => id.close());

  it('reads and changes with the cookie from the relay\'s own origin, with the CSRF token on changes', async () => {
    const created = await req('/v1/groups', { method: 'POST', headers: { cookie, ...SAME, origin: RELAY_URL, [CSRF_HEADER]: csrf, ...JSON_BODY }, body: JSON.stringify({ name: 'eng' }) });
    assert.equal(created.status, 201);
    const list = (await (await req('/v1/groups', { headers: { cookie, ...SAME } })).json()) as { groups: { name: string }[] };
    assert.deepEqual(list.groups.map((g) => g.name), ['eng']);
    // An Origin alone (a browser without Sec-Fetch-Site) is enough when it is the relay's.
    assert.equal((await req('/v1/groups', { headers: { cookie, origin: RELAY_URL } })).status, 200);
  });

  // Guards CSRF: a page on another site (or a sibling tunnel, same-site under the relay's zone,
  // whose form posts carry the SameSite=Lax cookie) cannot act with the visitor's session.
  it('refuses a cross-site form post, a sibling tunnel\'s call and a change without the CSRF token; nothing changes', async () => {
    const form = { cookie, 'content-type': 'application/x-www-form-urlencoded' };
    const crossSite = await req('/v1/groups', { method: 'POST', headers: { ...form, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }, body: 'name=evil' });
    assert.equal(crossSite.status, 403);
    assert.match((await errorOf(crossSite)).message, /only from the relay's own console.*another site/);
    const sibling = await req('/v1/groups', { method: 'POST', headers: { cookie, ...JSON_BODY, origin: 'http://app.tunn.localhost:8080', 'sec-fetch-site': 'same-site', [CSRF_HEADER]: csrf }, body: JSON.stringify({ name: 'sibling' }) });
    assert.equal(sibling.status, 403);
    const noToken = await req('/v1/groups', { method: 'POST', headers: { cookie, ...SAME, origin: RELAY_URL, ...JSON_BODY }, body: JSON.stringify({ name: 'notoken' }) });
    assert.equal(noToken.status, 403);
    assert.match((await errorOf(noToken)).message, /x-tunn-csrf.*nothing was changed/);
    const wrongToken = await req('/v1/groups/eng', { method: 'DELETE', headers: { cookie, ...SAME, origin: RELAY_URL, [CSRF_HEADER]: csrf.slice(1) + 'A' } });
    assert.equal(wrongToken.status, 403);
    // A cross-site read is refused too (no CORS headers either, so its answer could not be read).
    const read = await req('/v1/tokens', { headers: { cookie, 'sec-fetch-site': 'cross-site' } });
    assert.equal(read.status, 403);
    assert.equal(read.headers.get('access-control-allow-origin'), null);
    // Typed into the address bar or sent by a script with a stolen-looking cookie and no browser headers.
    assert.equal((await req('/v1/tokens', { headers: { cookie, 'sec-fetch-site': 'none' } })).status, 403);
    assert.equal((await req('/v1/tokens', { headers: { cookie } })).status, 403);
    const list = (await (await req('/v1/groups', { headers: { cookie, ...SAME } })).json()) as { groups: { name: string }[] };
    assert.deepEqual(list.groups.map((g) => g.name), ['eng']);
  });

  it('answers 401 for a session that was signed out (the console then sends the browser to sign in)', async () => {
    const login = await req('/login/dev', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: RELAY_URL }, body: new URLSearchParams({ email: 'gone@example.com' }) });
    const c = login.headers.getSetCookie()[0]!.split(';')[0]!;
    const s = await id.sessions.lookup(c.split('=')[1], new URL(RELAY_URL).host);
    await id.sessions.revokeFamily(s!);
    const res = await req('/v1/session', { headers: { cookie: c, ...SAME } });
    assert.equal(res.status, 401);
    const e = await errorOf(res);
    assert.equal(e.code, 'AUTH_REQUIRED');
    assert.match(e.message, /sign in again/);
    // A cookie that is no session at all is no sign-in either.
    assert.equal((await req('/v1/groups', { headers: { cookie: 'tunn=' + 'A'.repeat(43), ...SAME } })).status, 401);
  });

  it('tells bearer callers they need no CSRF token, and marks operators', async () => {
    const boss = await id.tokens.issue({ accountId: (await id.store.db.selectFrom('accounts').select('id').executeTakeFirstOrThrow()).id, kind: 'pat', email: 'boss@example.com' });
    const res = await req('/v1/session', { headers: { authorization: `Bearer ${boss.token}` } });
    const body = (await res.json()) as { csrf: string | null; admin: boolean };
    assert.equal(body.csrf, null);
    assert.equal(body.admin, true);
  });
});
