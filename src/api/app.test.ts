import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hc } from 'hono/client';
import { account, formTokenIn, gateRequest, identityFixture, RELAY_URL } from '../../test/fixtures/identity.ts';
import { createApiApp, type ApiApp } from './app.ts';

type Id = Awaited<ReturnType<typeof identityFixture>>;
const FORM = { 'content-type': 'application/x-www-form-urlencoded', origin: RELAY_URL };

function setCookies(res: Response): string[] {
  return res.headers.getSetCookie();
}
function sessionCookie(res: Response): string {
  const c = setCookies(res).find((s) => s.startsWith('tunn=') && !s.startsWith('tunn=;'));
  assert.ok(c, `no session cookie in ${JSON.stringify(setCookies(res))}`);
  return c.split(';')[0]!;
}
async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

describe('API', () => {
  let id: Id;
  let app: ApiApp;
  let token: string;
  let auth: Record<string, string>;
  let me: { id: string; email: string };
  const req = (path: string, init: RequestInit = {}) => app.request(path, init, { clientIp: '192.0.2.10' });

  before(async () => {
    id = await identityFixture({ dev: true });
    app = createApiApp(id);
    me = await account(id, 'me@example.com');
    token = (await id.tokens.issue({ accountId: me.id, kind: 'pat', email: me.email, label: 'test' })).token;
    auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  });
  after(() => id.close());

  it('publishes the JWKS and answers /v1/me through the typed client', async () => {
    const jwks = (await (await req('/.well-known/jwks.json')).json()) as { keys: { kid: string }[] };
    assert.equal(jwks.keys.length, 1);
    const client = hc<ApiApp>(RELAY_URL, { fetch: (input: RequestInfo | URL, init?: RequestInit) => app.request(input instanceof Request ? input : String(input), init) });
    const res = await client.v1.me.$get({}, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.email, 'me@example.com');
  });

  it('refuses missing, malformed, foreign-signed and revoked tokens with 401 and the right code', async () => {
    assert.equal((await errorOf(await req('/v1/me'))).code, 'AUTH_REQUIRED');
    for (const bad of ['garbage', 'a.b.c']) {
      const res = await req('/v1/me', { headers: { authorization: `Bearer ${bad}` } });
      assert.equal(res.status, 401);
      assert.equal((await errorOf(res)).code, 'AUTH_INVALID_TOKEN');
    }
    const other = await identityFixture();
    const oa = await account(other, 'me@example.com');
    const foreign = (await other.tokens.issue({ accountId: oa.id, kind: 'pat', email: oa.email })).token;
    await other.close();
    const f = await req('/v1/me', { headers: { authorization: `Bearer ${foreign}` } });
    assert.equal(f.status, 401);
    assert.equal((await errorOf(f)).code, 'AUTH_INVALID_TOKEN');
    const t = await id.tokens.issue({ accountId: me.id, kind: 'pat', email: me.email });
    await id.tokens.revoke(t.jti);
    const r = await req('/v1/me', { headers: { authorization: `Bearer ${t.token}` } });
    assert.equal(r.status, 401);
    assert.equal((await errorOf(r)).code, 'AUTH_TOKEN_REVOKED');
    const ev = await id.events.list({ kind: 'token_revoked_used' });
    assert.equal(ev[0]?.ip, '192.0.2.10');
  });

  it('manages groups, refusing bad input by name without changing anything', async () => {
    const created = await req('/v1/groups', { method: 'POST', headers: auth, body: JSON.stringify({ name: 'eng', emails: ['A@x.com', 'b@x.com'] }) });
    assert.equal(created.status, 201);
    const bad = await req('/v1/groups/eng/members', { method: 'POST', headers: auth, body: JSON.stringify({ emails: ['c@x.com', 'not-an-email'] }) });
    assert.equal(bad.status, 400);
    const e = await errorOf(bad);
    assert.equal(e.code, 'INVALID_INPUT');
    assert.match(e.message, /"not-an-email"/);
    const dup = await req('/v1/groups', { method: 'POST', headers: auth, body: JSON.stringify({ name: 'eng' }) });
    assert.equal(dup.status, 409);
    const malformed = await req('/v1/groups', { method: 'POST', headers: auth, body: '{nope' });
    assert.equal(malformed.status, 400);
    assert.equal((await errorOf(malformed)).code, 'INVALID_INPUT');
    const unknown = await req('/v1/groups/nosuch', { headers: auth });
    assert.equal(unknown.status, 404);
    assert.match((await errorOf(unknown)).message, /"nosuch"/);
    assert.equal((await req('/v1/groups/eng/members', { method: 'POST', headers: auth, body: JSON.stringify({ emails: ['c@x.com'] }) })).status, 200);
    assert.equal((await req('/v1/groups/eng/members/a%40x.com', { method: 'DELETE', headers: auth })).status, 200);
    const show = (await (await req('/v1/groups/eng', { headers: auth })).json()) as { group: { emails: string[] } };
    assert.deepEqual(show.group.emails, ['b@x.com', 'c@x.com']);
    const list = (await (await req('/v1/groups', { headers: auth })).json()) as { groups: unknown[] };
    assert.equal(list.groups.length, 1);
    assert.equal((await req('/v1/groups/eng', { method: 'DELETE', headers: auth })).status, 200);
    assert.equal((await req('/v1/groups/eng', { method: 'DELETE', headers: auth })).status, 404);
  });

  it('validates -a entries for tunnel registration, naming an unknown group or a bad entry', async () => {
    const unknown = await req('/v1/tunnels/validate-allow', { method: 'POST', headers: auth, body: JSON.stringify({ allow: ['group:ghosts'] }) });
    assert.equal(unknown.status, 404);
    const e = await errorOf(unknown);
    assert.equal(e.code, 'UNKNOWN_GROUP');
    assert.match(e.message, /group:ghosts/);
    const bad = await req('/v1/tunnels/validate-allow', { method: 'POST', headers: auth, body: JSON.stringify({ allow: ['alice@'] }) });
    assert.equal(bad.status, 400);
    assert.match((await errorOf(bad)).message, /"alice@"/);
    const ok = await req('/v1/tunnels/validate-allow', { method: 'POST', headers: auth, body: JSON.stringify({ allow: ['@Corp.com'] }) });
    assert.deepEqual(await ok.json(), { entries: ['@corp.com'], groups: [] });
  });

  it('creates, lists and revokes personal access tokens; only the caller\'s own', async () => {
    const created = (await (await req('/v1/tokens', { method: 'POST', headers: auth, body: JSON.stringify({ name: 'ci' }) })).json()) as { token: string; id: string };
    assert.equal((await req('/v1/me', { headers: { authorization: `Bearer ${created.token}` } })).status, 200);
    const list = (await (await req('/v1/tokens', { headers: auth })).json()) as { tokens: { id: string; name: string }[] };
    assert.ok(list.tokens.some((t) => t.id === created.id && t.name === 'ci'));
    const stranger = await account(id, 'stranger@example.com');
    const theirs = await id.tokens.issue({ accountId: stranger.id, kind: 'pat', email: stranger.email });
    const notMine = await req(`/v1/tokens/${theirs.jti}`, { method: 'DELETE', headers: auth });
    assert.equal(notMine.status, 404);
    const viaRevoke = await req('/v1/auth/token/revoke', { method: 'POST', headers: auth, body: JSON.stringify({ token: theirs.token }) });
    assert.equal(viaRevoke.status, 404);
    assert.ok(await id.tokens.verify(theirs.token, ['pat'])); // still valid
    assert.equal((await req('/v1/auth/token/revoke', { method: 'POST', headers: auth, body: JSON.stringify({ token: 'zzz' }) })).status, 400);
    assert.equal((await req('/v1/auth/token/revoke', { method: 'POST', headers: auth, body: JSON.stringify({ token: created.token }) })).status, 200);
    assert.equal((await req('/v1/me', { headers: { authorization: `Bearer ${created.token}` } })).status, 401);
    // An empty body revokes the token the request is made with (`tunn logout`).
    const own = await id.tokens.issue({ accountId: me.id, kind: 'pat', email: me.email });
    const h = { authorization: `Bearer ${own.token}`, 'content-type': 'application/json' };
    assert.equal((await req('/v1/auth/token/revoke', { method: 'POST', headers: h, body: '{}' })).status, 200);
    assert.equal((await req('/v1/me', { headers: h })).status, 401);
  });

  it('lists security events for the caller, refusing bad filters', async () => {
    await id.events.record({ kind: 'visitor_denied', accountId: me.id, email: 'x@y.com', tunnel: 'grafana', ip: '198.51.100.1' });
    const res = (await (await req('/v1/events?kind=visitor_denied', { headers: auth })).json()) as { events: { email: string; tunnel: string }[] };
    assert.deepEqual(res.events.map((e) => [e.email, e.tunnel]), [['x@y.com', 'grafana']]);
    const bad = await req('/v1/events?kind=nope', { headers: auth });
    assert.equal(bad.status, 400);
    assert.match((await errorOf(bad)).message, /"nope"/);
    assert.equal((await req('/v1/events?all=1', { headers: auth })).status, 403);
  });

  it('signs in with the dev login, hands over to the tunnel host, and the gate lets the visitor in', async () => {
    const page = await req('/login?return=' + encodeURIComponent('http://app.tunn.localhost:8080/x'));
    const html = await page.text();
    assert.match(html, /DEV LOGIN/);
    assert.match(html, /app\.tunn\.localhost:8080/);
    const res = await req('/login/dev', { method: 'POST', headers: FORM, body: new URLSearchParams({ email: 'Friend@Example.com', return: 'http://app.tunn.localhost:8080/x' }) });
    assert.equal(res.status, 302);
    // Signed in; the first hand-off to a host asks first (consent.ts).
    assert.equal(res.headers.get('location'), '/login?return=' + encodeURIComponent('http://app.tunn.localhost:8080/x'));
    const relayCookie = sessionCookie(res);
    const ask = await req(res.headers.get('location')!, { headers: { cookie: relayCookie } });
    assert.equal(ask.status, 200);
    const askHtml = await ask.text();
    assert.match(askHtml, /Continue to app\.tunn\.localhost:8080\?/);
    const yes = await req('/login/continue', { method: 'POST', headers: { ...FORM, cookie: relayCookie }, body: new URLSearchParams({ return: 'http://app.tunn.localhost:8080/x', csrf: formTokenIn(askHtml) }) });
    assert.equal(yes.status, 302);
    const loc = new URL(yes.headers.get('location')!);
    assert.equal(loc.origin, 'http://app.tunn.localhost:8080');
    assert.equal(loc.pathname, '/.tunn/auth/callback');
    const d = await id.gate.check(gateRequest({ path: loc.pathname + loc.search }), { tunnelId: 't', ownerAccountId: me.id, ownerEmail: me.email, allow: ['friend@example.com'], public: false });
    assert.equal(d.kind === 'respond' && d.status, 302);
    // Signed in on the relay and agreed once: the same host is handed over without asking.
    const again = await req('/login?return=' + encodeURIComponent('http://app.tunn.localhost:8080/y'), { headers: { cookie: relayCookie } });
    assert.equal(again.status, 302);
    assert.match(again.headers.get('location')!, /^http:\/\/app\.tunn\.localhost:8080\/\.tunn\/auth\/callback\?code=/);
  });

  it('refuses open redirects (security: return URLs only for hosts this relay serves, in no spelling a browser reads as another host)', async () => {
    const { cookieValue } = await id.sessions.create({ accountId: me.id, email: me.email, host: 'tunn.localhost:8080' });
    // Finding 1: the relay's own host with "//evil" as its path was answered with Location: //evil.example/.
    const evils = ['http://tunn.localhost:8080//evil.example/', 'http://tunn.localhost:8080/%2f%2fevil.example/', 'http://tunn.localhost:8080/%5cevil.example/', '/%2f%2fevil.example/', '/\t/evil.example/', '/%09/evil.example/'];
    for (const evil of [...evils, 'https://evil.com/', '//evil.com/', '/\\evil.com', 'javascript:alert(1)', 'http://app.tunn.localhost.evil.com/', 'http://user:pw@app.tunn.localhost/', 'ftp://app.tunn.localhost/', 'http://app.tunn.localhost:8080//evil.example/']) {
      const res = await req('/login?return=' + encodeURIComponent(evil), { headers: { cookie: `tunn=${cookieValue}` } });
      assert.equal(res.status, 400, evil);
      assert.equal(res.headers.get('location'), null);
      assert.match(await res.text(), /so tunn will not send you there/);
      const dev = await req('/login/dev', { method: 'POST', headers: FORM, body: new URLSearchParams({ email: 'a@b.com', return: evil }) });
      assert.equal(dev.status, 400, evil);
      assert.deepEqual(setCookies(dev), []);
    }
    const custom = await req('/login?return=' + encodeURIComponent('https://custom.example.test/'), { headers: { cookie: `tunn=${cookieValue}` } });
    assert.equal(custom.status, 200);
    assert.match(await custom.text(), /Continue to custom\.example\.test\?/);
    const relative = await req('/login?return=%2Fdevice', { headers: { cookie: `tunn=${cookieValue}` } });
    assert.equal(relative.headers.get('location'), '/device');
  });

  it('refuses a bad dev-login email and a cross-site form post', async () => {
    const bad = await req('/login/dev', { method: 'POST', headers: FORM, body: new URLSearchParams({ email: 'nope' }) });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /&quot;nope&quot;/);
    const cross = await req('/login/dev', { method: 'POST', headers: { ...FORM, origin: 'https://evil.com' }, body: new URLSearchParams({ email: 'a@b.com' }) });
    assert.equal(cross.status, 403);
    assert.deepEqual(setCookies(cross), []);
  });

  it('refuses the dev login when the relay runs without --dev', async () => {
    const prod = await identityFixture();
    const prodApp = createApiApp(prod);
    const res = await prodApp.request('/login/dev', { method: 'POST', headers: FORM, body: new URLSearchParams({ email: 'a@b.com' }) });
    assert.equal(res.status, 404);
    assert.deepEqual(setCookies(res), []);
    const page = await (await prodApp.request('/login')).text();
    assert.doesNotMatch(page, /DEV LOGIN|login\/dev/);
    assert.match(page, /No login method is configured/);
    await prod.close();
  });

  it('logs out on the relay, revoking the session; a tampered relay cookie counts as signed out', async () => {
    const res = await req('/login/dev', { method: 'POST', headers: FORM, body: new URLSearchParams({ email: 'bye@example.com' }) });
    const cookie = sessionCookie(res);
    assert.match(await (await req('/login', { headers: { cookie } })).text(), /signed in to tunn as <strong>bye@example.com/);
    const tampered = cookie.slice(0, -2) + (cookie.endsWith('AA') ? 'BB' : 'AA');
    assert.match(await (await req('/login', { headers: { cookie: tampered } })).text(), /Sign in to tunn/);
    const form = await (await req('/logout', { headers: { cookie } })).text();
    const out = await req('/logout', { method: 'POST', headers: { ...FORM, cookie }, body: new URLSearchParams({ csrf: formTokenIn(form) }) });
    assert.equal(out.status, 200);
    assert.ok(setCookies(out).some((s) => s.startsWith('tunn=;') && s.includes('Max-Age=0')));
    assert.equal(await id.sessions.lookup(cookie.slice(5), 'tunn.localhost:8080'), undefined);
  });

  it('runs the device-code login: pending, slow_down, approval in the browser, one token, then invalid_grant', async () => {
    const start = (await (await req('/v1/auth/device', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: 'tunn on laptop' }) })).json()) as {
      device_code: string; user_code: string; verification_uri: string; verification_uri_complete?: string; interval: number; expires_in: number;
    };
    assert.match(start.user_code, /^[B-Z]{4}-[B-Z]{4}$/);
    assert.equal(start.verification_uri, `${RELAY_URL}/device`);
    assert.equal(start.verification_uri_complete, undefined, 'no link that carries the code (RFC 8628 §5.4)');
    const poll = async () => {
      const r = await req('/v1/auth/device/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: start.device_code }) });
      return [r.status, (await r.json()) as Record<string, string>] as const;
    };
    assert.deepEqual((await poll())[1].error, 'authorization_pending');
    const fast = await poll();
    assert.equal(fast[1].error, 'slow_down');
    assert.equal(fast[1].interval, 10);
    // The browser: not signed in → login first, then back to the page where the code is typed.
    const anon = await req('/device');
    assert.equal(anon.status, 302);
    assert.equal(anon.headers.get('location'), `/login?return=${encodeURIComponent('/device')}`);
    const login = await req('/login/dev', { method: 'POST', headers: FORM, body: new URLSearchParams({ email: 'cli@example.com', return: '/device' }) });
    assert.equal(login.headers.get('location'), '/device');
    const cookie = sessionCookie(login);
    const form = await (await req('/device', { headers: { cookie } })).text();
    assert.match(form, /<input name="user_code"/);
    // Typed as people type it: lower case, a space for the dash.
    const confirmRes = await req('/device', { method: 'POST', headers: { ...FORM, cookie }, body: new URLSearchParams({ user_code: start.user_code.toLowerCase().replace('-', ' '), action: 'check', csrf: formTokenIn(form) }) });
    assert.equal(confirmRes.status, 200);
    const confirm = await confirmRes.text();
    assert.match(confirm, new RegExp(start.user_code));
    assert.match(confirm, /calls itself <q>tunn on laptop<\/q> \(its own words: tunn cannot check them\)/);
    assert.match(confirm, /full access to your tunn account, cli@example\.com/);
    const approved = await req('/device', { method: 'POST', headers: { ...FORM, cookie }, body: new URLSearchParams({ user_code: start.user_code, action: 'approve', csrf: formTokenIn(confirm) }) });
    assert.equal(approved.status, 200);
    id.manualClock.advance(11_000);
    const [status, got] = await poll();
    assert.equal(status, 200);
    assert.equal(got.token_type, 'Bearer');
    assert.equal(got.email, 'cli@example.com');
    const who = (await (await req('/v1/me', { headers: { authorization: `Bearer ${got.access_token}` } })).json()) as { email: string };
    assert.equal(who.email, 'cli@example.com');
    assert.equal((await poll())[1].error, 'invalid_grant');
  });

  it('reports access_denied and expired_token, and refuses an unknown device_code', async () => {
    const start = async () => (await (await req('/v1/auth/device', { method: 'POST' })).json()) as { device_code: string; user_code: string };
    const poll = async (dc: string) => ((await (await req('/v1/auth/device/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ device_code: dc }) })).json()) as { error: string }).error;
    const a = await start();
    assert.equal(await id.devices.decide(a.user_code, 'deny', { accountId: me.id, email: me.email }), true);
    assert.equal(await poll(a.device_code), 'access_denied');
    const b = await start();
    id.manualClock.advance(601_000);
    assert.equal(await poll(b.device_code), 'expired_token');
    assert.equal(await id.devices.decide(b.user_code, 'approve', { accountId: me.id, email: me.email }), false);
    assert.equal(await poll('nope'), 'invalid_grant');
  });

  it('answers unknown /v1 paths with a JSON 404', async () => {
    const res = await req('/v1/nope', { headers: auth });
    assert.equal(res.status, 404);
    assert.equal((await errorOf(res)).code, 'NOT_FOUND');
  });
});
