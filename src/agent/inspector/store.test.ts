import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BodyCapture, BODY_LIMIT, type InspectedRequest } from './model.ts';
import { InspectorStore } from './store.ts';

// Property guarded: the inspector's memory is bounded (the last 500 requests or 64 MiB of
// captured bodies, whichever comes first), however much traffic passes.

function entry(store: InspectorStore): InspectedRequest {
  return { id: store.nextId(), tunnel: 't', tunnelIndex: 0, time: Date.now(), visitor: null, clientIp: '', method: 'GET', path: '/', httpVersion: '1.1', requestHeaders: [], requestBody: new BodyCapture(), responseBody: new BodyCapture(), state: 'pending', evicted: false, retained: 0 };
}

function capture(store: InspectorStore, e: InspectedRequest, bytes: number): void {
  const chunk = Buffer.alloc(64 * 1024, 1);
  for (let left = bytes; left > 0; left -= chunk.length) {
    const n = Math.min(chunk.length, left);
    store.charge(e, e.responseBody.append(chunk, 0, n, store.accepts(e)));
  }
}

describe('inspector store', () => {
  it('keeps the last 500 requests', () => {
    const store = new InspectorStore();
    for (let i = 0; i < 2000; i++) store.add(entry(store));
    assert.equal(store.size, 500);
    assert.equal(store.list()[0]!.id, 2000);
    assert.equal(store.list()[499]!.id, 1501);
    assert.equal(store.get(1500), undefined);
  });

  it('keeps at most 64 MiB of bodies, each at most 1 MiB (marked truncated beyond)', () => {
    const store = new InspectorStore();
    let last: InspectedRequest | undefined;
    for (let i = 0; i < 200; i++) {
      last = entry(store);
      store.add(last);
      capture(store, last, BODY_LIMIT + 1000);
      assert.ok(store.retainedBytes <= store.maxBytes, `retained ${store.retainedBytes} after ${i + 1}`);
    }
    assert.equal(last!.responseBody.kept, BODY_LIMIT);
    assert.equal(last!.responseBody.size, BODY_LIMIT + 1000);
    assert.equal(last!.responseBody.truncated, true);
    assert.ok(store.size <= 64 && store.size >= 60, `${store.size} entries`);
    const kept = store.list().reduce((n, e) => n + e.responseBody.kept, 0);
    assert.ok(kept <= store.retainedBytes && store.retainedBytes - kept < store.size * 16 * 1024, 'the account covers what is kept');
  });

  it('an evicted in-flight entry stops keeping bytes; clear empties and tells listeners', () => {
    const store = new InspectorStore({ maxEntries: 1 });
    const a = entry(store);
    store.add(a);
    const events: string[] = [];
    store.subscribe((e) => events.push(e.type));
    store.add(entry(store));
    assert.equal(a.evicted, true);
    capture(store, a, 1000);
    assert.equal(a.responseBody.kept, 0);
    assert.equal(store.retainedBytes, 0);
    store.clear();
    assert.equal(store.size, 0);
    assert.deepEqual(events, ['add', 'clear']);
    // A listener that throws is dropped; capture (the caller) never sees it.
    store.subscribe(() => {
      throw new Error('page gone');
    });
    store.add(entry(store));
    store.add(entry(store));
    assert.deepEqual(events, ['add', 'clear', 'add', 'add']);
  });
});
