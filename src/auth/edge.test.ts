import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../lib/clock.ts';
import { isTunnError } from '../lib/errors.ts';
import { checkBasicAuth, parseBasicAuth } from './basic-auth.ts';
import { parseIpAllowList } from './ip-allow.ts';
import { parseRateLimit, RateLimiter } from './rate-limit.ts';

describe('IP allow-list', () => {
  it('matches IPv4 and IPv6 CIDRs and single addresses, and IPv4-mapped IPv6 clients', () => {
    const l = parseIpAllowList(['203.0.113.0/24', '2001:db8::/32', '192.0.2.7']);
    assert.equal(l.allows('203.0.113.200'), true);
    assert.equal(l.allows('::ffff:203.0.113.9'), true);
    assert.equal(l.allows('203.0.114.1'), false);
    assert.equal(l.allows('2001:db8:1::5'), true);
    assert.equal(l.allows('2001:db9::1'), false);
    assert.equal(l.allows('192.0.2.7'), true);
    assert.equal(l.allows('192.0.2.8'), false);
    assert.equal(l.allows('garbage'), false);
  });

  it('refuses malformed entries, naming each', () => {
    for (const bad of ['10.0.0.0/33', '10.0.0', 'fe80::/129', '1.2.3.4/x', 'example.com', '1.2.3.4/8/8']) {
      assert.throws(() => parseIpAllowList(['10.0.0.0/8', bad]), (e) => isTunnError(e, 'INVALID_INPUT') && e.message.includes(`"${bad}"`), bad);
    }
  });
});

describe('basic auth', () => {
  const cred = parseBasicAuth('admin:s3:cret');
  it('splits at the first colon and accepts exactly those credentials', () => {
    assert.deepEqual(cred, { user: 'admin', pass: 's3:cret' });
    const ok = 'Basic ' + Buffer.from('admin:s3:cret').toString('base64');
    assert.equal(checkBasicAuth(ok, cred), true);
    assert.equal(checkBasicAuth('Basic ' + Buffer.from('admin:s3:cre').toString('base64'), cred), false);
    assert.equal(checkBasicAuth('Bearer x', cred), false);
    assert.equal(checkBasicAuth(undefined, cred), false);
  });
  it('refuses a malformed flag without echoing the password', () => {
    for (const bad of ['admin', ':pw', 'admin:']) assert.throws(() => parseBasicAuth(bad), (e) => isTunnError(e, 'INVALID_INPUT'));
    assert.throws(() => parseBasicAuth('x:'), (e) => isTunnError(e, 'INVALID_INPUT') && e.message.includes('has an empty password (user "x")'));
    // Without a colon the whole value may be the password: nothing of it is quoted.
    assert.throws(() => parseBasicAuth('hunter2secret'), (e) => isTunnError(e, 'INVALID_INPUT') && e.message.includes('has no ":"') && !e.message.includes('hunter2'));
  });
});

describe('rate limits', () => {
  it('allows a burst of N, then refills at N per minute, with Retry-After', () => {
    const clock = new ManualClock(0);
    const rl = new RateLimiter({ clock });
    for (let i = 0; i < 3; i++) assert.deepEqual(rl.take('k', 3), { ok: true });
    assert.deepEqual(rl.take('k', 3), { ok: false, retryAfterSeconds: 20 });
    assert.deepEqual(rl.take('other', 3), { ok: true });
    clock.advance(20_000);
    assert.deepEqual(rl.take('k', 3), { ok: true });
    assert.equal(rl.take('k', 3).ok, false);
  });
  it('parses limits and names a bad one', () => {
    assert.equal(parseRateLimit('120'), 120);
    for (const bad of ['0', '-1', '1.5', 'fast', '']) assert.throws(() => parseRateLimit(bad), (e) => isTunnError(e, 'INVALID_INPUT') && e.message.includes(`"${bad}"`));
  });
});
