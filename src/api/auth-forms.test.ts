import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { account, formTokenIn, gateRequest, identityFixture, RELAY_URL } from '../../test/fixtures/identity.ts';
import { createApiApp, type ApiApp } from './app.ts';

// The relay's state-changing forms: one same-origin check for every POST, a session-bound
// form token on every signed-in form, sign-out by POST only, and consent before the first
// hand-off to each host (issue 9: finding 7, finding 9, and POST /device with Origin: null).

type Id = Awaited<ReturnType<typeof identityFixture>>;
const RELAY_HOST = new URL(RELAY_URL).host;
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const SAME = { ...FORM, origin: RELAY_URL, 'sec-fetch-site': 'same-origin' };
const APP = 'http://app.tunn.localhost:8080/dash';

/** Every way a post can come from somewhere other than the relay's own page. */
const FOREIGN: [string, Record<string, string>][] = [
  ['Origin: null (a sandboxed frame, a data: URL)', { origin: 'null' }],
  ['a sibling tunnel (same-site)', { origin: 'http://evil.tunn.localhost:8080', 'sec-fetch-site': 'same-site' }],
  ['another site', { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }],
  ['Sec-Fetch-Site: cross-site alone', { 'sec-fetch-site': 'cross-site' }],
  ['Sec-Fetch-Site: same-site alone', { 'sec-fetch-site': 'same-site' }],
  ['another port of the relay host', { origin: 'http://tunn.localhost:9999' }],
  ['a malformed Origin', { origin: 'tunn.localhost:8080' }],
];

describe('auth page forms', () => {
  let id: Id;
  let app: ApiApp;
  const req = (path: string, init: RequestInit = {}) => app.request(path, init, { clientIp: '192.0.2.10' });

  before(async () => {
    id = await identityFixture({ dev: true });
    app = createApiApp(id);
  });
  after(() => id.close());

  async function relaySession(email = 'alice@example.com'): Promise<{ cookie: string; value: string }> {
    const a = await account(id, email);
    const { cookieValue } = await id.sessions.create({ accountId: a.id, email: a.email, host: RELAY_HOST });
    return { cookie: `tunn=${cookieValue}`, value: cookieValue };
  }
  const alive = async (s: { value: string }) => (await id.sessions.lookup(s.value, RELAY_HOST)) !== undefined;
  async function pendingDevice(): Promise<string> {
    const start = (await (await req('/v1/auth/device', { method: 'POST' })).json()) as { user_code: string };
    return start.user_code;
  }
  async function handoffCodes(): Promise<number> {
    const r = await id.store.db.selectFrom('login_codes').select((eb) => eb.fn.countAll<number>().as('n')).where('purpose', '=', 'handoff').executeTakeFirstOrThrow();
    return Number(r.n);
  }

  it('refuses every state-changing POST that does not come from the relay\'s own page, changing nothing (security: CSRF, incl. Origin: null)', async () => {
    const s = await relaySession();
    const logoutToken = formTokenIn(await (await req('/logout', { headers: { cookie: s.cookie } })).text());
    const code = await pendingDevice();
    const deviceToken = formTokenIn(await (await req('/device', { headers: { cookie: s.cookie } })).text());
    const posts: [string, Record<string, string>][] = [
      ['/login/dev', { email: 'mallory@example.com' }],
      ['/login/email', { email: 'mallory@example.com' }],
      ['/login/email/verify', { token: 'A'.repeat(43) }],
      ['/login/continue', { return: APP, csrf: logoutToken }],
      ['/logout', { csrf: logoutToken }],
      ['/device', { user_code: code, action: 'check', csrf: deviceToken }],
      ['/device', { user_code: code, action: 'approve', csrf: deviceToken }],
    ];
    const before = await handoffCodes();
    for (const [path, fields] of posts) {
      for (const [what, headers] of FOREIGN) {
        const res = await req(path, { method: 'POST', headers: { ...FORM, ...headers, cookie: s.cookie }, body: new URLSearchParams(fields) });
        assert.equal(res.status, 403, `${path} from ${what}`);
        assert.match(await res.text(), /tunn refused this form because .*Open the page on this site again/, `${path} from ${what}`);
        assert.deepEqual(res.headers.getSetCookie(), [], `${path} from ${what}: no cookie set or cleared`);
        assert.equal(res.headers.get('location'), null);
      }
    }
    assert.ok(await alive(s), 'still signed in');
    assert.ok(await id.devices.pending(code), 'the device code is still waiting');
    assert.equal(await handoffCodes(), before, 'no hand-off was started');
  });

  it('approves a device code only from its page in this session: Origin: null and a missing or foreign form token are refused', async () => {
    const s = await relaySession();
    const code = await pendingDevice();
    const page = await (await req('/device', { headers: { cookie: s.cookie } })).text();
    // The repro: a sandboxed frame on any page posts with Origin: null.
    const nullOrigin = await req('/device', { method: 'POST', headers: { ...FORM, origin: 'null', cookie: s.cookie }, body: new URLSearchParams({ user_code: code, action: 'approve', csrf: formTokenIn(page) }) });
    assert.equal(nullOrigin.status, 403);
    const other = await relaySession('mallory@example.com');
    const foreignToken = formTokenIn(await (await req('/device', { headers: { cookie: other.cookie } })).text());
    for (const csrf of [undefined, '', foreignToken]) {
      const res = await req('/device', { method: 'POST', headers: { ...SAME, cookie: s.cookie }, body: new URLSearchParams({ user_code: code, action: 'approve', ...(csrf === undefined ? {} : { csrf }) }) });
      assert.equal(res.status, 403, `csrf=${csrf}`);
      assert.match(await res.text(), /This form has expired.*Nothing was changed/s);
    }
    assert.ok(await id.devices.pending(code), 'still waiting');
    const ok = await req('/device', { method: 'POST', headers: { ...SAME, cookie: s.cookie }, body: new URLSearchParams({ user_code: code, action: 'approve', csrf: formTokenIn(page) }) });
    assert.equal(ok.status, 200);
    assert.equal(await id.devices.pending(code), undefined);
  });

  // Security property: device-code phishing (RFC 8628 §5.4). Anyone can start a code with any
  // client_name and send a signed-in victim a link carrying it; the link must not lead to an
  // Approve button. The code has to be typed, what asked is shown as its own unverified
  // words, and the page warns that approving gives a terminal full access.
  it('never approves from a linked code: the visitor types it, sees the client as untrusted, and is warned (security: device-code phishing)', async () => {
    const s = await relaySession('victim@example.com');
    const start = (await (await req('/v1/auth/device', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: 'tunn CLI on your laptop (official) <b>' }) })).json()) as { user_code: string; verification_uri_complete?: string };
    assert.equal(start.verification_uri_complete, undefined, 'the relay hands out no link that carries the code');
    const code = start.user_code;
    const linked = await req(`/device?user_code=${code}`, { headers: { cookie: s.cookie } });
    assert.equal(linked.status, 200);
    const linkedPage = await linked.text();
    assert.doesNotMatch(linkedPage, /value="approve"/, 'no Approve button from a link');
    assert.doesNotMatch(linkedPage, new RegExp(code), 'the linked code is not shown (not even as a hint)');
    assert.doesNotMatch(linkedPage, /value="[B-Z]{4}-[B-Z]{4}"/, 'the code field is not prefilled');
    assert.match(linkedPage, /A link cannot fill in the code for you: type the code your own terminal shows/);
    assert.match(linkedPage, /If someone sent you a link or a code to enter here, do not/);
    // Signed out, the link's code is dropped on the way to sign-in too.
    assert.equal((await req(`/device?user_code=${code}`)).headers.get('location'), `/login?return=${encodeURIComponent('/device')}`);

    const csrf = formTokenIn(linkedPage);
    const check = await req('/device', { method: 'POST', headers: { ...SAME, cookie: s.cookie }, body: new URLSearchParams({ user_code: code, action: 'check', csrf }) });
    const confirm = await check.text();
    assert.match(confirm, /calls itself <q>tunn CLI on your laptop \(official\) &lt;b&gt;<\/q> \(its own words: tunn cannot check them\)/);
    assert.match(confirm, /Approving gives that terminal full access to your tunn account, victim@example\.com/);
    assert.match(confirm, /value="approve"/);
    assert.ok(await id.devices.pending(code), 'checking a code approves nothing');

    // Wrong or malformed codes say what was wrong and what to do.
    const bad = await req('/device', { method: 'POST', headers: { ...SAME, cookie: s.cookie }, body: new URLSearchParams({ user_code: 'hello', action: 'check', csrf }) });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /&quot;hello&quot; is not a device code: it has 8 letters, like BCDF-GHJK\. Type the code your terminal shows/);
    const unknown = await req('/device', { method: 'POST', headers: { ...SAME, cookie: s.cookie }, body: new URLSearchParams({ user_code: 'BCDF-BCDF', action: 'check', csrf }) });
    assert.equal(unknown.status, 400);
    assert.match(await unknown.text(), /The code BCDF-BCDF is not waiting for approval: check it against your terminal, or run tunn login again/);
  });

  // Security property: typed codes cannot be guessed by volume (RFC 8628 §5.1): a signed-in
  // account gets a few tries a minute, so nobody approves a stranger's pending code by brute force.
  it('limits the device codes one account may try per minute, saying how long to wait', async () => {
    const s = await relaySession('guesser@example.com');
    const csrf = formTokenIn(await (await req('/device', { headers: { cookie: s.cookie } })).text());
    const tryCode = (user_code: string) => req('/device', { method: 'POST', headers: { ...SAME, cookie: s.cookie }, body: new URLSearchParams({ user_code, action: 'check', csrf }) });
    for (let i = 0; i < 10; i++) assert.equal((await tryCode('BCDF-GHJK')).status, 400, `try ${i + 1}`);
    const code = await pendingDevice();
    const limited = await tryCode(code);
    assert.equal(limited.status, 429);
    assert.match(await limited.text(), /Too many device codes were tried from this account: wait \d+ s, then type the code your terminal shows/);
    id.manualClock.advance(60_000);
    assert.equal((await tryCode(code)).status, 200, 'a minute later the right code works');
  });

  it('signs out of the relay only by a POST with the session\'s form token (security: logout CSRF)', async () => {
    const s = await relaySession();
    const page = await req('/logout', { headers: { cookie: s.cookie } });
    assert.equal(page.status, 200);
    assert.deepEqual(page.headers.getSetCookie(), []);
    assert.ok(await alive(s), 'GET /logout signs nobody out');
    for (const csrf of [undefined, 'x', formTokenIn(await (await req('/logout', { headers: { cookie: (await relaySession()).cookie } })).text())]) {
      const res = await req('/logout', { method: 'POST', headers: { ...SAME, cookie: s.cookie }, body: new URLSearchParams(csrf === undefined ? {} : { csrf }) });
      assert.equal(res.status, 403, `csrf=${csrf}`);
    }
    assert.ok(await alive(s));
    const out = await req('/logout', { method: 'POST', headers: { ...SAME, cookie: s.cookie }, body: new URLSearchParams({ csrf: formTokenIn(await page.text()), return: APP }) });
    assert.equal(out.status, 302);
    assert.equal(out.headers.get('location'), `/login?return=${encodeURIComponent(APP)}`);
    assert.equal(await alive(s), false);
  });

  it('asks before the first hand-off to a host, and hands nothing over until the visitor agrees (security: a link must not leak the email)', async () => {
    const s = await relaySession('alice@example.com');
    const before = await handoffCodes();
    const ask = await req(`/login?return=${encodeURIComponent(APP)}`, { headers: { cookie: s.cookie } });
    assert.equal(ask.status, 200);
    assert.equal(ask.headers.get('location'), null);
    const html = await ask.text();
    assert.match(html, /Continue to app\.tunn\.localhost:8080\?/);
    assert.match(html, /app\.tunn\.localhost:8080<\/strong> learns that you are <strong>alice@example\.com/);
    // The consent page cannot be framed (no clickjacking of the button).
    assert.match(ask.headers.get('content-security-policy')!, /frame-ancestors 'none'/);
    assert.equal(await handoffCodes(), before, 'no code was issued by asking');
    // The consent form needs this session's token.
    for (const csrf of [undefined, formTokenIn(await (await req(`/login?return=${encodeURIComponent(APP)}`, { headers: { cookie: (await relaySession('mallory@example.com')).cookie } })).text())]) {
      const res = await req('/login/continue', { method: 'POST', headers: { ...SAME, cookie: s.cookie }, body: new URLSearchParams({ return: APP, ...(csrf ? { csrf } : {}) }) });
      assert.equal(res.status, 403);
      assert.match(await res.text(), /This form has expired/);
    }
    assert.equal(await handoffCodes(), before);
    // Not signed in: back to the login page, nothing handed over.
    const anon = await req('/login/continue', { method: 'POST', headers: SAME, body: new URLSearchParams({ return: APP, csrf: formTokenIn(html) }) });
    assert.equal(anon.headers.get('location'), `/login?return=${encodeURIComponent(APP)}`);
    // A return value the relay does not serve is refused here too.
    const evil = await req('/login/continue', { method: 'POST', headers: { ...SAME, cookie: s.cookie }, body: new URLSearchParams({ return: 'http://tunn.localhost:8080//evil.example/', csrf: formTokenIn(html) }) });
    assert.equal(evil.status, 400);
    const yes = await req('/login/continue', { method: 'POST', headers: { ...SAME, cookie: s.cookie }, body: new URLSearchParams({ return: APP, csrf: formTokenIn(html) }) });
    assert.equal(yes.status, 302);
    assert.match(yes.headers.get('location')!, /^http:\/\/app\.tunn\.localhost:8080\/\.tunn\/auth\/callback\?code=/);
  });

  it('remembers consent per (relay session, host) in the store: not for another host, another session, or a hand-off never completed', async () => {
    const owner = await account(id, 'owner@example.com');
    const tunnel = { tunnelId: 't', ownerAccountId: owner.id, ownerEmail: owner.email, allow: ['alice@example.com'], public: false };
    const s = await relaySession('alice@example.com');
    const consent = async (cookie: string, url: string) => {
      const html = await (await req(`/login?return=${encodeURIComponent(url)}`, { headers: { cookie } })).text();
      const res = await req('/login/continue', { method: 'POST', headers: { ...SAME, cookie }, body: new URLSearchParams({ return: url, csrf: formTokenIn(html) }) });
      return new URL(res.headers.get('location')!);
    };
    const visit = (cookie: string, url: string) => req(`/login?return=${encodeURIComponent(url)}`, { headers: { cookie } });
    // Agreed, but the hand-off never reached the host: still asks.
    await consent(s.cookie, APP);
    assert.equal((await visit(s.cookie, APP)).status, 200);
    // Agreed and handed off: the next link to that host goes straight through, keeping its path.
    const cb = await consent(s.cookie, APP);
    const done = await id.gate.check(gateRequest({ path: cb.pathname + cb.search }), tunnel);
    assert.equal(done.kind === 'respond' && done.headers.find(([n]) => n === 'location')?.[1], '/dash');
    const again = await visit(s.cookie, 'http://app.tunn.localhost:8080/other?x=1');
    assert.equal(again.status, 302);
    const cb2 = new URL(again.headers.get('location')!);
    assert.equal(cb2.host, 'app.tunn.localhost:8080');
    const d2 = await id.gate.check(gateRequest({ path: cb2.pathname + cb2.search }), tunnel);
    assert.equal(d2.kind === 'respond' && d2.headers.find(([n]) => n === 'location')?.[1], '/other?x=1');
    // Another host of the same relay: asks.
    assert.equal((await visit(s.cookie, 'http://other.tunn.localhost:8080/')).status, 200);
    // Another relay session (another visitor, or alice after signing in again): asks.
    assert.equal((await visit((await relaySession('alice@example.com')).cookie, APP)).status, 200);
    // Nothing a tunnel can set (a cookie it plants for the relay's domain) stands for consent.
    const planted = await relaySession('bob@example.com');
    const forged = await visit(`${planted.cookie}; tunn_consent=app.tunn.localhost:8080; consent=1`, APP);
    assert.equal(forged.status, 200);
  });

  it('accepts the dev relay\'s own pages over its plain-HTTP port too, and nothing else there (security: same-origin forms)', async () => {
    // tunn dev serves the sign-in pages on https://tunn.localhost:8443 and http://tunn.localhost:8080.
    const dev = await identityFixture({ dev: true, relayUrl: 'https://tunn.localhost:8443' });
    try {
      const devApp = createApiApp(dev);
      const post = (origin: string) =>
        devApp.request('http://tunn.localhost:8080/login/dev', { method: 'POST', headers: { ...FORM, origin, 'sec-fetch-site': 'same-origin' }, body: new URLSearchParams({ email: 'dana@example.com' }) }, { clientIp: '192.0.2.10' });
      assert.equal((await post('http://tunn.localhost:8080')).status, 302, 'the plain-HTTP page posts to itself');
      assert.equal((await post('http://evil.tunn.localhost:8080')).status, 403, 'a sibling tunnel on that port is still refused');
    } finally {
      await dev.close();
    }
  });
});
