import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { account, identityFixture, RELAY_URL } from '../../test/fixtures/identity.ts';
import { createApiApp, type ApiApp } from './app.ts';
import { ApiError, apiResult, createApiClient, pathParams } from './client.ts';

// How a browser may call /v1 (the web console, issue 13): the relay's session cookie works only
// from the console's own origin, every state-changing cookie call carries the CSRF token from
// GET /v1/session, no other origin gets CORS, and bearer tokens work as before.

type Id = Awaited<ReturnType<typeof identityFixture>>;
const EVIL = 'https://evil.example';
const SIBLING = 'http://app.tunn.localhost:8080';

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

function corsHeaders(res: Response): string[] {
  const out: string[] = [];
  res.headers.forEach((_, k) => void (k.startsWith('access-control-') && out.push(k)));
  return out;
}

describe('console access to /v1', () => {
  let id: Id;
  let app: ApiApp;
  let cookie: string;
  let csrf: string;
  let bearer: string;
  const req = (path: string, init: RequestInit = {}) => app.request(path, init, { clientIp: '192.0.2.10' });
  const groupNames = async () => ((await (await req('/v1/groups', { headers: { authorization: `Bearer ${bearer}` } })).json()) as { groups: { name: string }[] }).groups.map((g) => g.name);

  before(async () => {
    id = await identityFixture({ adminEmails: ['ops@example.com'] });
    app = createApiApp(id);
    const me = await account(id, 'me@example.com');
    const s = await id.sessions.create({ accountId: me.id, email: me.email, host: new URL(RELAY_URL).host });
    cookie = `tunn=${s.cookieValue}`;
    bearer = (await id.tokens.issue({ accountId: me.id, kind: 'pat', email: me.email, label: 'cli' })).token;
  });
  after(() => id.close());

  it('GET /v1/session (same origin) says who, which relay, the CSRF token and admin; never cached', async () => {
    const res = await req('/v1/session', { headers: { cookie, 'sec-fetch-site': 'same-origin' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const body = (await res.json()) as { email: string; relay: string; csrf: string; admin: boolean; via: string; csrfHeader: string };
    assert.equal(body.email, 'me@example.com');
    assert.equal(body.relay, RELAY_URL);
    assert.equal(body.via, 'session');
    assert.equal(body.admin, false);
    assert.equal(body.csrfHeader, 'x-tunn-csrf');
    assert.match(body.csrf, /^[A-Za-z0-9_-]{43}$/);
    csrf = body.csrf;
    const viaToken = (await (await req('/v1/session', { headers: { authorization: `Bearer ${bearer}` } })).json()) as { csrf: string | null; via: string };
    assert.deepEqual([viaToken.via, viaToken.csrf], ['token', null]);
  });

  it('the console\'s typed client: session first, then changes with its CSRF token', async () => {
    // What web/ does: createApiClient over the browser's fetch (here: the app in-process, the cookie set by hand).
    let token = '';
    const api = createApiClient(RELAY_URL, {
      fetch: async (input, init) => app.request(input instanceof Request ? input : String(input), init),
      headers: () => ({ cookie, origin: RELAY_URL, 'sec-fetch-site': 'same-origin', ...(token ? { 'x-tunn-csrf': token } : {}) }),
    });
    const session = await apiResult(api.v1.session.$get());
    assert.equal(session.email, 'me@example.com');
    await assert.rejects(apiResult(api.v1.groups.$post({ json: { name: 'typed' } })), (e) => e instanceof ApiError && e.status === 403 && /x-tunn-csrf/.test(e.message));
    token = session.csrf!;
    const created = await apiResult(api.v1.groups.$post({ json: { name: 'typed' } }));
    assert.equal(created.group.name, 'typed');
    await apiResult(api.v1.groups[':name'].$delete({ param: pathParams({ name: 'typed' }) }));
  });

  it('a cookie call from the console with the CSRF header changes things', async () => {
    const res = await req('/v1/groups', { method: 'POST', headers: { cookie, origin: RELAY_URL, 'sec-fetch-site': 'same-origin', 'content-type': 'application/json', 'x-tunn-csrf': csrf }, body: JSON.stringify({ name: 'eng' }) });
    assert.equal(res.status, 201);
    assert.deepEqual(await groupNames(), ['eng']);
  });

  // Security property: CSRF. A form on another site posting to /v1 with the visitor's cookie is refused, nothing changes.
  it('refuses a cross-site form post', async () => {
    const res = await req('/v1/groups', { method: 'POST', headers: { cookie, origin: EVIL, 'sec-fetch-site': 'cross-site', 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=pwned' });
    assert.equal(res.status, 403);
    const e = await errorOf(res);
    assert.equal(e.code, 'FORBIDDEN');
    assert.match(e.message, /came from another site \(https:\/\/evil\.example\): the session works only from the console at http:\/\/tunn\.localhost:8080/);
    assert.deepEqual(await groupNames(), ['eng']);
  });

  // Security property: CSRF. A same-origin-looking cookie call that lacks the token (a sibling
  // tunnel's page cannot read it) is refused.
  it('refuses a cookie call without the CSRF header, or with a wrong one', async () => {
    for (const token of [undefined, 'x'.repeat(43), '']) {
      const headers: Record<string, string> = { cookie, 'content-type': 'application/json' };
      if (token !== undefined) headers['x-tunn-csrf'] = token;
      const res = await req('/v1/groups', { method: 'POST', headers, body: JSON.stringify({ name: 'pwned' }) });
      assert.equal(res.status, 403);
      assert.match((await errorOf(res)).message, /must carry the x-tunn-csrf header with the csrf value from GET \/v1\/session \(reload the console\); nothing was changed/);
    }
    assert.equal((await req('/v1/groups/eng', { method: 'DELETE', headers: { cookie } })).status, 403);
    assert.deepEqual(await groupNames(), ['eng']);
  });

  // Security property: cookie access only from the console's own origin. A foreign Origin is
  // refused even with the right CSRF token; a sibling tunnel (same-site) cannot even read.
  it('refuses cookie calls from a foreign origin or a sibling tunnel, reads included', async () => {
    const post = await req('/v1/groups', { method: 'POST', headers: { cookie, origin: EVIL, 'content-type': 'application/json', 'x-tunn-csrf': csrf }, body: JSON.stringify({ name: 'pwned' }) });
    assert.equal(post.status, 403);
    for (const headers of [{ cookie, origin: SIBLING }, { cookie, 'sec-fetch-site': 'same-site' }, { cookie, origin: 'null' }] as Record<string, string>[]) {
      const get = await req('/v1/tokens', { headers });
      assert.equal(get.status, 403, JSON.stringify(headers));
      assert.equal((await errorOf(get)).code, 'FORBIDDEN');
    }
    assert.deepEqual(await groupNames(), ['eng']);
  });

  // Security property: bearer tokens are unaffected by the console's rules (scripts send no cookie and no CSRF header).
  it('a bearer call needs no CSRF header, from anywhere', async () => {
    const res = await req('/v1/groups', { method: 'POST', headers: { authorization: `Bearer ${bearer}`, origin: EVIL, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'ops' }) });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
  });

  // Security property: /v1 answers CORS for no origin (preflights refused, no Allow-Origin on any answer).
  it('answers no CORS: a preflight is refused and carries no Access-Control-Allow-*', async () => {
    const pre = await req('/v1/groups', { method: 'OPTIONS', headers: { origin: EVIL, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-tunn-csrf, content-type' } });
    assert.equal(pre.status, 403);
    assert.deepEqual(corsHeaders(pre), []);
    const get = await req('/v1/session', { headers: { cookie, origin: RELAY_URL } });
    assert.equal(get.status, 200);
    assert.deepEqual(corsHeaders(get), []);
  });

  // Security property: a token shown once is not kept by any cache.
  it('a created token is sent with Cache-Control: no-store', async () => {
    const res = await req('/v1/tokens', { method: 'POST', headers: { cookie, origin: RELAY_URL, 'content-type': 'application/json', 'x-tunn-csrf': csrf }, body: JSON.stringify({ name: 'from the console' }) });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('cache-control'), 'no-store');
  });

  // Security property: a session cookie is bound to its host: a tunnel host's session is no key to /v1.
  it('refuses a session issued for a tunnel host, and an expired or signed-out one, with what to do', async () => {
    const me = await account(id, 'me@example.com');
    const other = await id.sessions.create({ accountId: me.id, email: me.email, host: 'app.tunn.localhost:8080' });
    const res = await req('/v1/session', { headers: { cookie: `tunn=${other.cookieValue}` } });
    assert.equal(res.status, 401);
    assert.match((await errorOf(res)).message, /has expired or was signed out: sign in again at http:\/\/tunn\.localhost:8080\/login/);
    assert.equal((await req('/v1/me', {})).status, 401);
  });

  it('relay admins see every account\'s tokens; others are refused', async () => {
    const ops = await account(id, 'ops@example.com');
    const opsToken = (await id.tokens.issue({ accountId: ops.id, kind: 'pat', email: ops.email })).token;
    const all = (await (await req('/v1/tokens?all=1', { headers: { authorization: `Bearer ${opsToken}` } })).json()) as { tokens: { email: string; lastUsedAt: string | null }[] };
    assert.ok(all.tokens.some((t) => t.email === 'me@example.com'));
    assert.ok(all.tokens.some((t) => t.email === 'me@example.com' && t.lastUsedAt !== null), 'last use is listed');
    const mine = await req('/v1/tokens?all=1', { headers: { authorization: `Bearer ${bearer}` } });
    assert.equal(mine.status, 403);
    assert.match((await errorOf(mine)).message, /only the relay's operators \(--admin-email\) can list every account's tokens/);
    const admin = (await (await req('/v1/session', { headers: { authorization: `Bearer ${opsToken}` } })).json()) as { admin: boolean };
    assert.equal(admin.admin, true);
  });

  it('says what to do where a session or a token cannot do what was asked', async () => {
    const out = await req('/v1/session', { method: 'DELETE', headers: { authorization: `Bearer ${bearer}` } });
    assert.equal(out.status, 400);
    assert.equal((await errorOf(out)).message, 'this signs a browser out; a token is revoked with `tunn logout` or DELETE /v1/tokens/<id>');
    const revoke = await req('/v1/auth/token/revoke', { method: 'POST', headers: { cookie, 'x-tunn-csrf': csrf } });
    assert.equal(revoke.status, 400);
    assert.match((await errorOf(revoke)).message, /^name the token to revoke: \{ "jti": "<id from GET \/v1\/tokens>" \} or \{ "token": "<the token>" \}$/);
    // This app was made without the relay's tunnel list.
    const tunnels = await req('/v1/tunnels', { headers: { authorization: `Bearer ${bearer}` } });
    assert.equal(tunnels.status, 404);
    assert.equal((await errorOf(tunnels)).message, 'this relay does not serve live tunnel status');
  });

  it('DELETE /v1/session signs the browser out (with the CSRF header), and the cookie stops working', async () => {
    assert.equal((await req('/v1/session', { method: 'DELETE', headers: { cookie } })).status, 403);
    const res = await req('/v1/session', { method: 'DELETE', headers: { cookie, 'x-tunn-csrf': csrf } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('set-cookie') ?? '', /^tunn=; .*Max-Age=0/);
    assert.equal((await req('/v1/session', { headers: { cookie } })).status, 401);
  });
});
