import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../lib/clock.ts';
import { IdentityOutageCache } from './outage-cache.ts';

describe('IdentityOutageCache', () => {
  // Guards: identity decisions during a database outage come from cache for at most the window, then fail closed.
  it('answers from cache within the window of an outage, then fails closed', () => {
    const clock = new ManualClock(1_000_000);
    const c = new IdentityOutageCache<string>({ clock, windowMs: 30_000 });
    const k = IdentityOutageCache.key('tok', 'a.example', 't1');
    c.answered(k, 'allow');
    assert.equal(c.unavailable(k), 'allow');
    clock.advance(30_000);
    assert.equal(c.unavailable(k), 'allow');
    clock.advance(1);
    assert.equal(c.unavailable(k), undefined);
    assert.equal(c.outageMs(), 30_001);
  });

  // Guards: an answer older than the window is never reused (a group edit or an expiry since then).
  it('does not reuse an answer made longer than the window before the outage', () => {
    const clock = new ManualClock();
    const c = new IdentityOutageCache<string>({ clock, windowMs: 30_000 });
    const k = IdentityOutageCache.key('tok', 'a.example', 't1');
    c.answered(k, 'allow');
    clock.advance(30_001);
    assert.equal(c.unavailable(k), undefined);
    // Old answers are dropped as new ones come.
    c.answered(IdentityOutageCache.key('other', 'a.example', 't1'), 'allow');
    assert.deepEqual(c.values(), ['allow']);
  });

  // Guards: a revocation seen before the outage still applies (the refusal is the cached answer).
  it('keeps the last answer, so a refusal seen before the outage stays a refusal', () => {
    const clock = new ManualClock();
    const c = new IdentityOutageCache<string>({ clock });
    const k = IdentityOutageCache.key('tok', 'a.example', 't1');
    c.answered(k, 'allow');
    c.answered(k, 'revoked');
    assert.equal(c.unavailable(k), 'revoked');
  });

  // Guards: a credential never seen, or seen on another host or tunnel, is not let in during an outage.
  it('fails closed for an unknown credential and does not widen across hosts', () => {
    const clock = new ManualClock();
    const c = new IdentityOutageCache<string>({ clock });
    c.answered(IdentityOutageCache.key('tok', 'a.example', 't1'), 'allow');
    assert.equal(c.unavailable(IdentityOutageCache.key('tok', 'b.example', 't1')), undefined);
    assert.equal(c.unavailable(IdentityOutageCache.key('other', 'a.example', 't1')), undefined);
    assert.equal(c.unavailable(undefined), undefined);
  });

  it('starts a new window after the database answers again', () => {
    const clock = new ManualClock();
    const c = new IdentityOutageCache<string>({ clock, windowMs: 10 });
    const k = IdentityOutageCache.key('tok', 'a', 't');
    c.answered(k, 'allow');
    c.unavailable(k);
    clock.advance(20);
    assert.equal(c.unavailable(k), undefined);
    assert.equal(c.outageMs(), 20);
    c.answered(k, 'allow');
    assert.equal(c.outageMs(), undefined);
    clock.advance(5);
    assert.equal(c.unavailable(k), 'allow');
  });

  it('forgets answers a revocation names', () => {
    const c = new IdentityOutageCache<{ jti: string }>({ clock: new ManualClock() });
    const k = IdentityOutageCache.key('tok', 'a', 't');
    c.answered(k, { jti: 'j1' });
    c.forget((d) => d.jti === 'j1');
    assert.equal(c.unavailable(k), undefined);
  });
});
