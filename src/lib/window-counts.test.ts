import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WindowCounts } from './window-counts.ts';

describe('WindowCounts', () => {
  it('allows `limit` per key and window, then refuses naming the key (first refusal said once), and starts again after the window', () => {
    const w = new WindowCounts({ limit: 2, windowMs: 1000 });
    assert.deepEqual(w.take(['a'], 0), { ok: true });
    assert.deepEqual(w.take(['a'], 10), { ok: true });
    assert.deepEqual(w.take(['a'], 20), { ok: false, key: 'a', first: true });
    assert.deepEqual(w.take(['a'], 30), { ok: false, key: 'a', first: false });
    assert.deepEqual(w.take(['b'], 30), { ok: true }, 'keys are counted apart');
    assert.deepEqual(w.take(['a'], 1000), { ok: true }, 'a new window');
  });

  it('counts one take against every key or, when one is full, against none', () => {
    const w = new WindowCounts({ limit: 2, windowMs: 1000 });
    assert.ok(w.take(['s1'], 0).ok);
    assert.ok(w.take(['s2', 'acct'], 500).ok);
    assert.ok(w.take(['s2', 'acct'], 500).ok);
    assert.deepEqual(w.take(['s1', 'acct'], 600), { ok: false, key: 'acct', first: true });
    // The refused take did not count against s1: it has one left in its window.
    assert.ok(w.take(['s1'], 700).ok);
    assert.deepEqual(w.take(['s1'], 700), { ok: false, key: 's1', first: true });
  });

  it('drops passed windows once it holds maxKeys, and forgets a key at once', () => {
    const w = new WindowCounts({ limit: 1, windowMs: 100, maxKeys: 3 });
    for (const k of ['a', 'b', 'c']) w.take([k], 0);
    w.take(['d'], 50);
    assert.deepEqual([...w.keys()].sort(), ['a', 'b', 'c', 'd'], 'none had passed');
    w.take(['e'], 200);
    assert.deepEqual([...w.keys()].sort(), ['e'], 'the passed ones went');
    w.forget('e');
    assert.deepEqual([...w.keys()], []);
  });
});
