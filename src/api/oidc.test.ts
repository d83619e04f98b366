import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { followOp, startOidcProvider, type TestOp } from '../../test/support/oidc.ts';
import { identityFixture, RELAY_URL } from '../../test/fixtures/identity.ts';
import { createApiApp, type ApiApp } from './app.ts';

// OpenID Connect sign-in against a real oidc-provider on loopback (discovery, PKCE, state,
// nonce, code exchange, ID token validation).

const CALLBACK = `${RELAY_URL}/login/oidc/corp/callback`;

describe('OIDC login', () => {
  let op: TestOp;
  let id: Awaited<ReturnType<typeof identityFixture>>;
  let app: ApiApp;
  before(async () => {
    op = await startOidcProvider({ redirectUris: [CALLBACK] });
    // The OP checks token lifetimes against real time.
    id = await identityFixture({ providers: [{ type: 'oidc', id: 'corp', name: 'Corp SSO', issuer: op.issuer, clientId: op.clientId, clientSecret: op.clientSecret }] });
    id.manualClock.set(Date.now());
    app = createApiApp(id);
  });
  after(async () => {
    await id.close();
    await op.close();
  });

  async function begin(ret = 'http://app.tunn.localhost:8080/dash'): Promise<{ binding: string; authorize: URL }> {
    const res = await app.request(`/login/oidc/corp?return=${encodeURIComponent(ret)}`);
    assert.equal(res.status, 302);
    const authorize = new URL(res.headers.get('location')!);
    assert.equal(authorize.origin, op.issuer);
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(authorize.searchParams.get('nonce'));
    const binding = res.headers.getSetCookie().find((c) => c.startsWith('tunn_oidc='))!.split(';')[0]!;
    return { binding, authorize };
  }

  it('offers the provider on the login page', async () => {
    assert.match(await (await app.request('/login')).text(), /href="\/login\/oidc\/corp">Continue with Corp SSO/);
  });

  it('signs in through the provider and continues to the consent page for the tunnel host', async () => {
    op.nextUser = 'Dana@Example.com';
    const { binding, authorize } = await begin();
    const cb = await followOp(authorize.href, CALLBACK);
    const res = await app.request(cb.pathname + cb.search, { headers: { cookie: binding } });
    assert.equal(res.status, 302, await res.clone().text());
    // A provider that signs in without a click (GET /login/oidc/… is a plain link) must not
    // hand the email to a tunnel: the first hand-off asks (security: issue 9, finding 9).
    assert.equal(res.headers.get('location'), `/login?return=${encodeURIComponent('http://app.tunn.localhost:8080/dash')}`);
    const relayCookie = res.headers.getSetCookie().find((c) => /^tunn=[A-Za-z0-9_-]{43};/.test(c))!.split(';')[0]!;
    const s = await id.sessions.lookup(relayCookie.slice(5), 'tunn.localhost:8080');
    assert.equal(s?.email, 'dana@example.com');
    // The state is single-use: replaying the callback fails.
    const replay = await app.request(cb.pathname + cb.search, { headers: { cookie: binding } });
    assert.equal(replay.status, 401);
  });

  it('refuses a callback in another browser (no binding cookie) and an unverified email', async () => {
    op.nextUser = 'eve@example.com';
    const a = await begin();
    const cb = await followOp(a.authorize.href, CALLBACK);
    const other = await app.request(cb.pathname + cb.search);
    assert.equal(other.status, 401);
    assert.match(await other.text(), /another browser/);
    assert.deepEqual(other.headers.getSetCookie().filter((c) => c.startsWith('tunn=') && !c.startsWith('tunn=;')), []);

    op.nextUser = 'unverified@example.com';
    op.nextVerified = false;
    const b = await begin();
    const cb2 = await followOp(b.authorize.href, CALLBACK);
    const res = await app.request(cb2.pathname + cb2.search, { headers: { cookie: b.binding } });
    op.nextVerified = true;
    assert.equal(res.status, 401);
    assert.match(await res.text(), /not verified/);
    const failures = await id.events.list({ kind: 'login_failed' });
    // Same client, same window: one row counting both (bursts are deduplicated).
    assert.ok(failures.reduce((n, e) => n + e.count, 0) >= 2);
  });

  it('refuses an open redirect before leaving for the provider', async () => {
    const res = await app.request(`/login/oidc/corp?return=${encodeURIComponent('https://evil.com/')}`);
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('location'), null);
  });
});
