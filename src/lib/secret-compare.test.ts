import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bearerIs, sameSecret } from './secret-compare.ts';

// Security property: the relay's /metrics token (and any other configured secret compared
// with sameSecret) is checked in constant time over fixed-length digests, so a client cannot
// learn it byte by byte from response times; wrong guesses of every shape are refused and
// none throws (timingSafeEqual throws on unequal lengths, which digests rule out).

const TOKEN = 'metrics-token-0123456789';

describe('secret comparison', () => {
  it('accepts exactly the secret, and refuses prefixes, extensions, other lengths and near misses', () => {
    assert.equal(sameSecret(TOKEN, TOKEN), true);
    for (const guess of ['', 'm', TOKEN.slice(0, -1), `${TOKEN}0`, TOKEN.toUpperCase(), `${TOKEN.slice(0, -1)}8`, 'x'.repeat(10_000), 'métrics-token-0123456789']) {
      assert.equal(sameSecret(guess, TOKEN), false, JSON.stringify(guess.slice(0, 30)));
    }
    assert.equal(sameSecret(undefined, TOKEN), false);
  });

  it('reads a Bearer header: scheme in any case, the token exact', () => {
    assert.equal(bearerIs(`Bearer ${TOKEN}`, TOKEN), true);
    assert.equal(bearerIs(`bearer ${TOKEN}`, TOKEN), true);
    assert.equal(bearerIs(`BEARER\t${TOKEN} `, TOKEN), true);
    for (const h of [undefined, '', 'Bearer', `Bearer  `, `Basic ${TOKEN}`, `Bearer ${TOKEN}x`, `Bearer ${TOKEN} extra`, `Bearer${TOKEN}`, TOKEN]) {
      assert.equal(bearerIs(h, TOKEN), false, String(h));
    }
    assert.equal(bearerIs(`Bearer ${TOKEN}`, undefined), false, 'no token configured: nobody matches');
  });
});
