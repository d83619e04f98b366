import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../lib/clock.ts';
import { isTunnError } from '../lib/errors.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { ensureAccount } from '../store/accounts.ts';
import { openStore, type Store } from '../store/store.ts';
import { TokenService } from './tokens.ts';

describe('TokenService', () => {
  let store: Store;
  let tokens: TokenService;
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
  const box = new SecretBox(randomBytes(32));
  before(async () => {
    store = await openStore(':memory:');
    tokens = new TokenService({ store, box, clock, issuer: 'https://relay.test' });
    await tokens.init();
  });
  after(() => store.close());

  it('issues a token that verifies, and refuses it once revoked', async () => {
    const acct = await ensureAccount(store, 'Alice@Example.com');
    assert.equal(acct.email, 'alice@example.com');
    const t = await tokens.issue({ accountId: acct.id, kind: 'agent', label: 'laptop' });
    const claims = await tokens.verify(t.token, ['agent']);
    assert.equal(claims.sub, acct.id);
    assert.equal(claims.jti, t.jti);
    assert.equal(await tokens.revoke(t.jti), true);
    await assert.rejects(tokens.verify(t.token, ['agent']), (e) => isTunnError(e, 'AUTH_TOKEN_REVOKED'));
  });

  it('refuses a token of another kind, a tampered one and a foreign-signed one', async () => {
    const acct = await ensureAccount(store, 'bob@example.com');
    const t = await tokens.issue({ accountId: acct.id, kind: 'pat' });
    await assert.rejects(tokens.verify(t.token, ['agent']), (e) => isTunnError(e, 'AUTH_INVALID_TOKEN'));
    const [h, p, s] = t.token.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), sub: 'other' })).toString('base64url')}.${s}`;
    await assert.rejects(tokens.verify(tampered, ['pat']), (e) => isTunnError(e, 'AUTH_INVALID_TOKEN'));
    const otherStore = await openStore(':memory:');
    const foreign = new TokenService({ store: otherStore, box, clock, issuer: 'https://relay.test' });
    await foreign.init();
    const foreignAcct = await ensureAccount(otherStore, 'bob@example.com');
    const ft = await foreign.issue({ accountId: foreignAcct.id, kind: 'pat' });
    await assert.rejects(tokens.verify(ft.token, ['pat']), (e) => isTunnError(e, 'AUTH_INVALID_TOKEN'));
    await otherStore.close();
    await assert.rejects(tokens.verify('not-a-jwt', ['pat']), (e) => isTunnError(e, 'AUTH_INVALID_TOKEN'));
  });

  it('keeps old tokens valid across a key rotation, and expires by the injected clock', async () => {
    const acct = await ensureAccount(store, 'carol@example.com');
    const before = await tokens.issue({ accountId: acct.id, kind: 'session', ttlSeconds: 60 });
    const oldKid = JSON.parse(Buffer.from(before.token.split('.')[0]!, 'base64url').toString()).kid;
    await tokens.rotateKeys();
    await tokens.verify(before.token, ['session']);
    assert.equal(tokens.jwks().keys.length, 2);
    clock.advance(61_000);
    await assert.rejects(tokens.verify(before.token, ['session']), (e) => isTunnError(e, 'AUTH_INVALID_TOKEN'));
    clock.advance(-61_000);
    await tokens.retireKey(oldKid);
    await assert.rejects(tokens.verify(before.token, ['session']), (e) => isTunnError(e, 'AUTH_INVALID_TOKEN'));
  });

  // Security property: the key every new token is signed with cannot be retired out from under
  // the relay (it would keep signing tokens that no relay accepts).
  it('refuses to retire the signing key, saying to rotate first', async () => {
    const signing = tokens.signingKid!;
    await assert.rejects(tokens.retireKey(signing), (e) => isTunnError(e, 'CONFLICT') && e.message === `${signing} is the signing key (new tokens are signed with it): rotate first (\`tunn relay keys rotate\`), then retire it`);
    const next = await tokens.rotateKeys();
    assert.equal(tokens.signingKid, next);
    await tokens.retireKey(signing);
  });
});
