import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { identityFixture, RELAY_URL } from '../../test/fixtures/identity.ts';
import { startSmtpSink, type SmtpSink } from '../../test/support/smtp.ts';
import { createApiApp, type ApiApp } from './app.ts';

// Email sign-in against a real SMTP server on loopback.

const FORM = { 'content-type': 'application/x-www-form-urlencoded', origin: RELAY_URL };

function linkIn(text: string): URL {
  const m = /http:\/\/tunn\.localhost:8080\/login\/email\/verify\?token=[A-Za-z0-9_%-]+/.exec(text);
  assert.ok(m, 'no sign-in link in the mail');
  return new URL(m[0]);
}

describe('magic links', () => {
  let smtp: SmtpSink;
  let id: Awaited<ReturnType<typeof identityFixture>>;
  let app: ApiApp;
  before(async () => {
    smtp = await startSmtpSink();
    id = await identityFixture({ magicLink: { smtpUrl: smtp.url, from: 'tunn <login@tunn.localhost>' } });
    app = createApiApp(id);
  });
  after(async () => {
    await id.close();
    await smtp.close();
  });

  async function ask(email: string, ret = 'http://app.tunn.localhost:8080/here'): Promise<{ attempt: string; link: URL }> {
    const n = smtp.messages.length;
    const res = await app.request('/login/email', { method: 'POST', headers: FORM, body: new URLSearchParams({ email, return: ret }) });
    assert.equal(res.status, 200);
    const attempt = res.headers.getSetCookie().find((c) => c.startsWith('tunn_attempt='))!.split(';')[0]!;
    const mail = await smtp.waitFor(email, { after: n });
    return { attempt, link: linkIn(mail.text) };
  }

  it('signs in from the browser that asked, once, and continues to the consent page for the tunnel host', async () => {
    const { attempt, link } = await ask('Ann@Example.com');
    const res = await app.request(link.pathname + link.search, { headers: { cookie: attempt } });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('location'), `/login?return=${encodeURIComponent('http://app.tunn.localhost:8080/here')}`);
    assert.ok(res.headers.getSetCookie().some((c) => /^tunn=[A-Za-z0-9_-]{43};/.test(c)));
    const again = await app.request(link.pathname + link.search, { headers: { cookie: attempt } });
    assert.equal(again.status, 400);
    assert.equal((await id.events.list({ kind: 'login_failed' })).length, 1);
  });

  it('asks for confirmation elsewhere, so a link scanner cannot use the link up (security: login CSRF)', async () => {
    const { link } = await ask('bo@example.com');
    const scan = await app.request(link.pathname + link.search);
    assert.equal(scan.status, 200);
    assert.match(await scan.text(), /Sign in as <strong>bo@example.com/);
    assert.deepEqual(scan.headers.getSetCookie(), []);
    const confirm = await app.request('/login/email/verify', { method: 'POST', headers: FORM, body: new URLSearchParams({ token: link.searchParams.get('token')! }) });
    assert.equal(confirm.status, 302);
  });

  it('expires links by the clock and refuses bad input', async () => {
    const { attempt, link } = await ask('cy@example.com');
    id.manualClock.advance(601_000);
    assert.equal((await app.request(link.pathname + link.search, { headers: { cookie: attempt } })).status, 400);
    id.manualClock.advance(-601_000);
    const n = smtp.messages.length;
    const bad = await app.request('/login/email', { method: 'POST', headers: FORM, body: new URLSearchParams({ email: 'not an email' }) });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /not a valid email/);
    const evil = await app.request('/login/email', { method: 'POST', headers: FORM, body: new URLSearchParams({ email: 'a@b.com', return: 'https://evil.com/' }) });
    assert.equal(evil.status, 400);
    assert.equal(smtp.messages.length, n);
  });
});
