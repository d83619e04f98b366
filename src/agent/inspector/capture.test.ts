import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RequestLogEntry } from '../forward.ts';
import { captureWatch, MAX_PENDING_CAPTURES } from './capture.ts';
import { InspectorStore } from './store.ts';

// The capture of one forwarded connection, fed the bytes a real connection carries.

function watch(store = new InspectorStore()) {
  const log: RequestLogEntry[] = [];
  const w = captureWatch({ store, tunnel: () => 'app.tunn.test', tunnelIndex: 0, clientIp: '203.0.113.9', onRequest: (e) => log.push(e) });
  return { store, log, w };
}

describe('inspector capture', () => {
  it('records pipelined requests with the visitor, bodies (chunked kept as sent) and the request log', () => {
    const { store, log, w } = watch();
    w.request(Buffer.from('POST /api/items HTTP/1.1\r\nHost: app\r\nTunn-User-Email: alice@example.com\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n{"a":1\r\n1\r\n}\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: app\r\n\r\n'));
    w.response(Buffer.from('HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok'));
    w.response(Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'));
    w.end();
    const [b, a] = store.list();
    assert.equal(a!.visitor, 'alice@example.com');
    assert.equal(a!.clientIp, '203.0.113.9');
    assert.equal(a!.status, 201);
    assert.equal(a!.state, 'complete');
    assert.equal(a!.requestBody.chunked, true);
    assert.equal(a!.requestBody.bytes().toString(), '6\r\n{"a":1\r\n1\r\n}\r\n0\r\n\r\n');
    assert.equal(a!.responseBody.bytes().toString(), 'ok');
    assert.equal(b!.visitor, null);
    assert.equal(b!.status, 404);
    assert.deepEqual(log.map((e) => [e.method, e.path, e.status]), [['POST', '/api/items', 201], ['GET', '/b', 404]]);
  });

  it('keeps the first WebSocket bytes of each direction after a 101', () => {
    const { store, w } = watch();
    w.request(Buffer.from('GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'));
    w.response(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x02hi', 'latin1'));
    w.request(Buffer.from([0x81, 0x82, 1, 2, 3, 4, 'y'.charCodeAt(0) ^ 1, 'o'.charCodeAt(0) ^ 2]));
    w.end();
    const e = store.list()[0]!;
    assert.equal(e.status, 101);
    assert.equal(e.websocket!.toClient.bytes().toString('latin1'), '\x81\x02hi');
    assert.equal(e.websocket!.toTarget.kept, 8);
  });

  it('marks a request without a response as aborted, and stops (never throws) on bytes that are not HTTP', () => {
    const { store, w } = watch();
    w.request(Buffer.from('GET /slow HTTP/1.1\r\nHost: app\r\n\r\n'));
    w.response(Buffer.from('garbage that is not a status line\r\n\r\n'));
    w.response(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'));
    w.end();
    w.end();
    assert.equal(store.list()[0]!.state, 'aborted');
  });

  // Property: a client pipelining requests to a target that never answers cannot grow the
  // agent's memory through the capture: at most MAX_PENDING_CAPTURES requests wait for their
  // response as entries; the rest are only counted, and responses still pair with the right request.
  it('captures at most MAX_PENDING_CAPTURES requests awaiting a response, and counts the rest as dropped', () => {
    const { store, log, w } = watch(new InspectorStore({ maxEntries: 100_000 }));
    const n = 10_000;
    let bytes = '';
    for (let i = 0; i < n; i++) bytes += `GET /r/${i} HTTP/1.1\r\nHost: app\r\n\r\n`;
    w.request(Buffer.from(bytes));
    assert.equal(store.size, MAX_PENDING_CAPTURES);
    assert.equal(w.dropped, n - MAX_PENDING_CAPTURES);
    // Answers for the captured ones and for every dropped one; then a request that is captured again.
    w.response(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'.repeat(n)));
    w.request(Buffer.from('GET /after HTTP/1.1\r\nHost: app\r\n\r\n'));
    w.response(Buffer.from('HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n'));
    w.end();
    assert.equal(store.size, MAX_PENDING_CAPTURES + 1);
    assert.equal(log.length, MAX_PENDING_CAPTURES + 1);
    assert.deepEqual(log[0], { ...log[0]!, path: '/r/0', status: 200 });
    assert.deepEqual(log.at(-1), { ...log.at(-1)!, path: '/after', status: 201 });
    assert.ok(store.list().every((e) => e.state === 'complete'));
  });
});
