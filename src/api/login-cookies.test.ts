import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSmtpSink, type SmtpSink } from '../../test/support/smtp.ts';
import { followOp, startOidcProvider, type TestOp } from '../../test/support/oidc.ts';
import { identityFixture } from '../../test/fixtures/identity.ts';
import { createApiApp, type ApiApp } from './app.ts';

// Security property: login CSRF through a planted login-binding cookie. The cookies that bind
// an OIDC sign-in (tunn_oidc) and a magic-link attempt (tunn_attempt) to the browser that
// started it were plain host cookies, so any sibling tunnel's origin could set one with
// `Domain=<zone>`: the attacker plants their own binding in the victim's browser, sends the
// victim their callback or link, and the victim is signed in as the attacker. Over HTTPS they
// are `__Host-` cookies (Path=/, Secure, no Domain), which no other host can set, and only
// that name is read. Real OpenID provider and SMTP sink on loopback; the relay is https.

const RELAY = 'https://tunn.example.test';
const CALLBACK = `${RELAY}/login/oidc/corp/callback`;
const FORM = { 'content-type': 'application/x-www-form-urlencoded', origin: RELAY };

describe('login-binding cookies over HTTPS', () => {
  let op: TestOp;
  let smtp: SmtpSink;
  let id: Awaited<ReturnType<typeof identityFixture>>;
  let app: ApiApp;
  before(async () => {
    op = await startOidcProvider({ redirectUris: [CALLBACK] });
    smtp = await startSmtpSink();
    id = await identityFixture({
      relayUrl: RELAY,
      providers: [{ type: 'oidc', id: 'corp', name: 'Corp SSO', issuer: op.issuer, clientId: op.clientId, clientSecret: op.clientSecret }],
      magicLink: { smtpUrl: smtp.url, from: 'tunn <login@tunn.example.test>' },
    });
    id.manualClock.set(Date.now()); // the OP checks token lifetimes against real time
    app = createApiApp(id);
  });
  after(async () => {
    await id.close();
    await op.close();
    await smtp.close();
  });

  /** The one Set-Cookie of `name`, checked to be a `__Host-` cookie no sibling host can plant. */
  function hostCookie(res: Response, name: string): string {
    const set = res.headers.getSetCookie().find((c) => c.startsWith(`__Host-${name}=`));
    assert.ok(set, `sets __Host-${name} (got ${res.headers.getSetCookie().join(' | ')})`);
    assert.match(set, /; Path=\/(;|$)/);
    assert.match(set, /; Secure(;|$)/);
    assert.doesNotMatch(set, /Domain=/i);
    assert.equal(res.headers.getSetCookie().some((c) => c.startsWith(`${name}=`)), false, `no unprefixed ${name}`);
    return set.split(';')[0]!.slice(set.indexOf('=') + 1);
  }

  it('OIDC: the binding is __Host-tunn_oidc; a planted tunn_oidc signs nobody in', async () => {
    op.nextUser = 'mallory@example.com';
    const start = await app.request(`${RELAY}/login/oidc/corp`);
    assert.equal(start.status, 302);
    const binding = hostCookie(start, 'tunn_oidc');
    const cb = await followOp(start.headers.get('location')!, CALLBACK);
    // The attacker's binding, planted by a sibling tunnel with Domain=<zone>, reaches the relay unprefixed.
    const planted = await app.request(cb.href, { headers: { cookie: `tunn_oidc=${binding}` } });
    assert.equal(planted.status, 401);
    assert.match(await planted.text(), /another browser/);
    assert.equal(planted.headers.getSetCookie().some((c) => /^__Host-tunn=[^;]/.test(c)), false, 'no session');

    op.nextUser = 'dana@example.com';
    const again = await app.request(`${RELAY}/login/oidc/corp`);
    const own = hostCookie(again, 'tunn_oidc');
    const cb2 = await followOp(again.headers.get('location')!, CALLBACK);
    const ok = await app.request(cb2.href, { headers: { cookie: `__Host-tunn_oidc=${own}` } });
    assert.equal(ok.status, 302, await ok.clone().text());
    assert.ok(ok.headers.getSetCookie().some((c) => /^__Host-tunn=[A-Za-z0-9_-]{43};/.test(c)), 'signed in');
    assert.ok(ok.headers.getSetCookie().some((c) => /^__Host-tunn_oidc=; Path=\/; Max-Age=0/.test(c)), 'binding cleared');
  });

  it('magic link: the attempt is __Host-tunn_attempt; a planted tunn_attempt only gets the confirmation page', async () => {
    const n = smtp.messages.length;
    const asked = await app.request(`${RELAY}/login/email`, { method: 'POST', headers: FORM, body: new URLSearchParams({ email: 'mallory@example.com' }) });
    assert.equal(asked.status, 200);
    const attempt = hostCookie(asked, 'tunn_attempt');
    const mail = await smtp.waitFor('mallory@example.com', { after: n });
    const link = /https:\/\/tunn\.example\.test\/login\/email\/verify\?token=[A-Za-z0-9_%-]+/.exec(mail.text)?.[0];
    assert.ok(link, 'a sign-in link in the mail');
    const planted = await app.request(link, { headers: { cookie: `tunn_attempt=${attempt}` } });
    assert.equal(planted.status, 200);
    assert.match(await planted.text(), /Sign in as <strong>mallory@example\.com/);
    assert.deepEqual(planted.headers.getSetCookie(), [], 'not signed in without a click');
    const own = await app.request(link, { headers: { cookie: `__Host-tunn_attempt=${attempt}` } });
    assert.equal(own.status, 302);
    assert.ok(own.headers.getSetCookie().some((c) => /^__Host-tunn=[A-Za-z0-9_-]{43};/.test(c)), 'the browser that asked is signed in');
  });
});
