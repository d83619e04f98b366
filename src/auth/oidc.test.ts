import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { OidcLogins } from './oidc.ts';
import { identityFixture, RELAY_URL } from '../../test/fixtures/identity.ts';

// The presets, without the network: GitHub is plain OAuth 2 (no discovery, no nonce, PKCE
// still on); the full OIDC round trip is in src/api/oidc.test.ts against a real OP.

describe('login provider presets', () => {
  let id: Awaited<ReturnType<typeof identityFixture>>;
  before(async () => {
    id = await identityFixture({ providers: [{ type: 'google', clientId: 'g', clientSecret: 's' }, { type: 'github', clientId: 'gh-id', clientSecret: 's' }] });
  });
  after(() => id.close());

  it('names Google and GitHub, in configured order', () => {
    assert.deepEqual(id.oidc.list(), [{ id: 'google', name: 'Google' }, { id: 'github', name: 'GitHub' }]);
  });

  it('sends GitHub logins to github.com/login/oauth/authorize with PKCE and state, asking for the email scope', async () => {
    const { url, binding } = await id.oidc.begin('github', 'http://app.tunn.localhost:8080/');
    const u = new URL(url);
    assert.equal(u.origin + u.pathname, 'https://github.com/login/oauth/authorize');
    assert.equal(u.searchParams.get('client_id'), 'gh-id');
    assert.equal(u.searchParams.get('redirect_uri'), `${RELAY_URL}/login/oidc/github/callback`);
    assert.equal(u.searchParams.get('code_challenge_method'), 'S256');
    assert.match(u.searchParams.get('scope')!, /user:email/);
    assert.equal(u.searchParams.get('nonce'), null);
    assert.ok(u.searchParams.get('state') && binding);
  });

  it('refuses a provider error, a forged state and a duplicate configuration', async () => {
    await assert.rejects(id.oidc.complete('github', new URL(`${RELAY_URL}/cb?error=access_denied`), undefined), (e) => isTunnError(e, 'LOGIN_FAILED') && /access_denied/.test(e.message));
    await assert.rejects(id.oidc.complete('github', new URL(`${RELAY_URL}/cb?code=x&state=forged`), 'b'), (e) => isTunnError(e, 'LOGIN_FAILED'));
    assert.throws(() => new OidcLogins({ providers: [{ type: 'github', clientId: 'a', clientSecret: 'b' }, { type: 'github', clientId: 'a', clientSecret: 'b' }], codes: id.codes, relayUrl: RELAY_URL }), (e) => isTunnError(e, 'CONFIG_INVALID'));
  });
});
