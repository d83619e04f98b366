import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isTunnToken } from './bearer.ts';
import { isTunnCookie, stripTunnCookies } from './cookies.ts';
import { account, identityFixture, RELAY_URL } from '../../test/fixtures/identity.ts';

// What the gateway strips from every request as tunn's own credentials (src/relay/forward-headers.ts).

describe('tunn cookies', () => {
  it('names the session and login cookies, with or without prefixes, and nothing else (security: they never reach an origin)', () => {
    for (const n of ['tunn', '__Host-tunn', '__host-TUNN', '__Secure-tunn', 'tunn_attempt', 'tunn_oidc', 'TUNN_next']) assert.ok(isTunnCookie(n), n);
    for (const n of ['tunnel', 'mytunn', 'tunn-x', '__Host-session', 'x_tunn']) assert.ok(!isTunnCookie(n), n);
  });

  it('keeps other cookies byte for byte', () => {
    assert.equal(stripTunnCookies('a=1;b=2'), 'a=1;b=2');
    assert.equal(stripTunnCookies('__Host-tunn=s; a=1;b="q r"'), 'a=1;b="q r"');
    assert.equal(stripTunnCookies('a=1;  tunn=s ;b=2'), 'a=1;b=2');
    assert.equal(stripTunnCookies('tunn=s; tunn_oidc=x'), undefined);
  });
});

describe('isTunnToken', () => {
  let id: Awaited<ReturnType<typeof identityFixture>>;
  before(async () => {
    id = await identityFixture();
  });
  after(() => id.close());

  it('recognises any token this relay issued, valid or revoked, and nothing else (security: tunn credentials never reach an origin)', async () => {
    const a = await account(id, 'alice@example.com');
    const { token, jti } = await id.tokens.issue({ accountId: a.id, kind: 'pat' });
    assert.ok(isTunnToken(`Bearer ${token}`, RELAY_URL));
    assert.ok(isTunnToken(`bearer  ${token}`, RELAY_URL));
    await id.tokens.revoke(jti);
    assert.ok(isTunnToken(`Bearer ${token}`, RELAY_URL), 'a revoked one is still tunn’s');
    assert.ok(!isTunnToken(`Bearer ${token}`, 'https://other-issuer.example'));
    assert.ok(!isTunnToken('Bearer app-secret', RELAY_URL));
    assert.ok(!isTunnToken('Bearer a.b.c', RELAY_URL));
    assert.ok(!isTunnToken(`Basic ${Buffer.from('u:p').toString('base64')}`, RELAY_URL));
  });
});
