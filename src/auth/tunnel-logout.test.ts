import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GateDecision, TunnelPolicy } from './gate.ts';
import { account, gateRequest, identityFixture, RELAY_URL } from '../../test/fixtures/identity.ts';

// Security property (issue 9, finding 7): nothing but a form post from the tunnel host's own
// page signs a visitor out. A sibling tunnel is same-site (the relay zone is not a public
// suffix), so its <img src=".../.tunn/logout"> or auto-submitted form carries the host's
// SameSite=Lax cookie; before the fix, a GET alone revoked the host and relay sessions.

type Id = Awaited<ReturnType<typeof identityFixture>>;
const HOST = 'app.tunn.localhost:8080';
const ORIGIN = `http://${HOST}`;
const SAME_ORIGIN: [string, string][] = [['origin', ORIGIN], ['sec-fetch-site', 'same-origin']];

function status(d: GateDecision): number | undefined {
  return d.kind === 'respond' ? d.status : undefined;
}
function body(d: GateDecision): string {
  return d.kind === 'respond' ? String(d.body) : '';
}
function logoutToken(d: GateDecision): string {
  const m = /action="\/\.tunn\/logout\?csrf=([A-Za-z0-9_-]+)/.exec(body(d));
  assert.ok(m, `no sign-out form on the page:\n${body(d)}`);
  return m[1]!;
}

describe('/.tunn/logout on a tunnel host', () => {
  let id: Id;
  let t: TunnelPolicy;
  before(async () => {
    id = await identityFixture();
    const owner = await account(id, 'owner@example.com');
    t = { tunnelId: 't1', ownerAccountId: owner.id, ownerEmail: owner.email, allow: ['friend@example.com'], public: false };
  });
  after(() => id.close());

  /** A relay session handed to HOST: the host's cookie line and the relay cookie value. */
  async function signedIn(): Promise<{ cookie: string; relayCookie: string }> {
    const a = await account(id, 'friend@example.com');
    const { session, cookieValue } = await id.sessions.create({ accountId: a.id, email: a.email, host: new URL(RELAY_URL).host });
    const url = new URL(await id.handoff.start(session, new URL(`${ORIGIN}/`)));
    const cb = await id.gate.check(gateRequest({ path: url.pathname + url.search }), t);
    const set = cb.kind === 'respond' ? cb.headers.find(([n]) => n === 'set-cookie')?.[1] : undefined;
    assert.ok(set);
    return { cookie: set.split(';')[0]!, relayCookie: cookieValue };
  }
  async function stillSignedIn(s: { cookie: string; relayCookie: string }): Promise<boolean> {
    const d = await id.gate.check(gateRequest({ cookie: s.cookie }), t);
    return d.kind === 'allow' && (await id.sessions.lookup(s.relayCookie, new URL(RELAY_URL).host)) !== undefined;
  }

  it('a GET (an <img> on a sibling tunnel, a prefetch, a link) signs nobody out: it shows a sign-out button', async () => {
    const s = await signedIn();
    for (const path of ['/.tunn/logout', '/.tunn/logout?switch=1']) {
      const d = await id.gate.check(gateRequest({ cookie: s.cookie, path, accept: 'image/avif,image/webp,*/*', headers: [['sec-fetch-site', 'same-site'], ['sec-fetch-dest', 'image']] }), t);
      assert.equal(status(d), 200, path);
      assert.match(body(d), /<form method="post" action="\/\.tunn\/logout\?csrf=/);
      assert.match(body(d), /friend@example\.com/);
      assert.ok(d.kind === 'respond' && !d.headers.some(([n]) => n === 'set-cookie'), 'a GET changes no cookie');
    }
    assert.ok(await stillSignedIn(s));
  });

  it('refuses a POST from a sibling tunnel or any other page, even one carrying the right token', async () => {
    const s = await signedIn();
    const csrf = logoutToken(await id.gate.check(gateRequest({ cookie: s.cookie, path: '/.tunn/logout' }), t));
    const foreign: [string, [string, string][]][] = [
      ['a sibling tunnel', [['origin', 'http://evil.tunn.localhost:8080'], ['sec-fetch-site', 'same-site']]],
      ['the relay', [['origin', RELAY_URL], ['sec-fetch-site', 'same-site']]],
      ['another site', [['origin', 'https://evil.example'], ['sec-fetch-site', 'cross-site']]],
      ['a sandboxed frame (Origin: null)', [['origin', 'null']]],
      ['same-site without Origin', [['sec-fetch-site', 'same-site']]],
      ['cross-site without Origin', [['sec-fetch-site', 'cross-site']]],
      ['the right Origin but a cross-site fetch', [['origin', ORIGIN], ['sec-fetch-site', 'cross-site']]],
      ['https for an http host', [['origin', `https://${HOST}`]]],
    ];
    for (const [what, headers] of foreign) {
      const d = await id.gate.check(gateRequest({ method: 'POST', cookie: s.cookie, path: `/.tunn/logout?csrf=${csrf}`, headers }), t);
      assert.equal(status(d), 403, what);
      assert.match(body(d), /tunn refused this form because .*Open the page on this site again/, what);
    }
    assert.ok(await stillSignedIn(s));
  });

  it('refuses a same-origin POST without this session\'s form token, saying what to do', async () => {
    const s = await signedIn();
    const other = await signedIn();
    const otherToken = logoutToken(await id.gate.check(gateRequest({ cookie: other.cookie, path: '/.tunn/logout' }), t));
    for (const path of ['/.tunn/logout', '/.tunn/logout?csrf=', `/.tunn/logout?csrf=${otherToken}`, '/.tunn/logout?csrf=' + 'A'.repeat(43)]) {
      const d = await id.gate.check(gateRequest({ method: 'POST', cookie: s.cookie, path, headers: SAME_ORIGIN }), t);
      assert.equal(status(d), 403, path);
      assert.match(body(d), /You are still signed in/);
    }
    assert.ok(await stillSignedIn(s));
  });

  it('signs out of the host and the relay on a same-origin POST with the token', async () => {
    const s = await signedIn();
    const csrf = logoutToken(await id.gate.check(gateRequest({ cookie: s.cookie, path: '/.tunn/logout' }), t));
    const d = await id.gate.check(gateRequest({ method: 'POST', cookie: s.cookie, path: `/.tunn/logout?csrf=${csrf}`, headers: SAME_ORIGIN }), t);
    assert.equal(status(d), 200);
    assert.match(body(d), /signed out of tunn/);
    assert.ok(d.kind === 'respond' && d.headers.some(([n, v]) => n === 'set-cookie' && /^tunn=; .*Max-Age=0/.test(v)));
    assert.equal(await stillSignedIn(s), false);
    // A form post without Origin and Sec-Fetch-Site (no browser sends none; curl does) works with the token.
    const c = await signedIn();
    const token = logoutToken(await id.gate.check(gateRequest({ cookie: c.cookie, path: '/.tunn/logout' }), t));
    assert.equal(status(await id.gate.check(gateRequest({ method: 'POST', cookie: c.cookie, path: `/.tunn/logout?csrf=${token}` }), t)), 200);
    assert.equal(await stillSignedIn(c), false);
  });

  it('answers other methods with 405 naming the allowed ones, and a signed-out POST just clears the cookie', async () => {
    const put = await id.gate.check(gateRequest({ method: 'PUT', path: '/.tunn/logout' }), t);
    assert.equal(status(put), 405);
    assert.ok(put.kind === 'respond' && put.headers.some(([n, v]) => n === 'allow' && v === 'GET, HEAD, POST'));
    const anon = await id.gate.check(gateRequest({ method: 'POST', path: '/.tunn/logout', headers: SAME_ORIGIN }), t);
    assert.equal(status(anon), 200);
    const page = await id.gate.check(gateRequest({ path: '/.tunn/logout' }), t);
    assert.match(body(page), /You are not signed in to app\.tunn\.localhost:8080/);
    // The callback still answers GET only.
    assert.equal(status(await id.gate.check(gateRequest({ method: 'POST', path: '/.tunn/auth/callback?code=x' }), t)), 405);
  });
});
