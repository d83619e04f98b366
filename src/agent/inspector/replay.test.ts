import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseTarget, type Target } from '../target.ts';
import { BodyCapture, type InspectedRequest } from './model.ts';
import { replay } from './replay.ts';
import { InspectorStore } from './store.ts';

// Replays against a real target on 127.0.0.1:0.

describe('inspector replay', () => {
  let server: http.Server;
  let target: Target;
  before(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    target = parseTarget(`127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  after(() => server.close());

  // Property guarded: the inspector's memory bound counts each captured byte once. Before the
  // fix a replay's body was counted twice (charged, then counted again when added) and removed
  // once on eviction, so the store's total drifted up until every new entry was evicted at once.
  it('accounts replayed bytes exactly: 70 replays under a 1 MiB bound', async () => {
    const store = new InspectorStore({ maxBytes: 1024 * 1024 });
    const original: InspectedRequest = { id: store.nextId(), tunnel: 't', tunnelIndex: 0, time: Date.now(), visitor: null, clientIp: '1', method: 'POST', path: '/', httpVersion: '1.1', requestHeaders: [['Host', 'x']], requestBody: new BodyCapture(), responseBody: new BodyCapture(), state: 'complete', evicted: false, retained: 0 };
    store.add(original);
    const body = 'x'.repeat(40 * 1024);
    let last: InspectedRequest | undefined;
    for (let i = 0; i < 70; i++) {
      last = await replay(store, original, target, { body }, true);
      const sum = store.list().reduce((n, e) => n + e.retained, 0);
      assert.equal(store.retainedBytes, sum, `after replay ${i + 1}: the store's total is the sum of its entries`);
      assert.ok(store.retainedBytes <= store.maxBytes);
    }
    assert.equal(last!.evicted, false, 'the newest replay is kept');
    assert.equal(store.get(last!.id), last);
    assert.equal(last!.status, 200);
    // Bodies are kept in 16 KiB blocks: each replay holds 64 KiB (3 blocks of request, 1 of
    // answer), so 1 MiB holds 16 of them. The bound, not drift, decides how many stay.
    assert.equal(store.size, 16, `entries kept: ${store.size}`);
    store.clear();
    assert.equal(store.retainedBytes, 0);
  });
});
