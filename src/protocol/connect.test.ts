import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONNECT_ALPN, connectHeaders, readConnectRequest } from './connect.ts';
import { readRefusal, refusalResponse } from './stream-refusal.ts';

describe('tunn-connect/1', () => {
  it('pins the ALPN id and the request headers of a check and a carried connection', () => {
    assert.equal(CONNECT_ALPN, 'tunn-connect/1');
    const r = { host: 'db.tunn.example.com', kind: 'tcp' as const, token: 'tok' };
    assert.deepEqual(connectHeaders('check', r), { ':method': 'GET', ':path': '/check', 'tunn-host': 'db.tunn.example.com', 'tunn-connect-kind': 'tcp', authorization: 'Bearer tok' });
    assert.deepEqual(connectHeaders('carry', r), { ':method': 'CONNECT', ':authority': 'db.tunn.example.com', 'tunn-connect-kind': 'tcp', authorization: 'Bearer tok' });
  });

  it('reads back what the client sends, host normalised', () => {
    const r = readConnectRequest({ ':method': 'CONNECT', ':authority': 'DB.Tunn.Example.com', 'tunn-connect-kind': 'udp', authorization: 'Bearer abc' });
    assert.deepEqual(r, { ok: true, method: 'carry', request: { host: 'db.tunn.example.com', kind: 'udp', token: 'abc' } });
  });

  it('says what is wrong with a request it cannot take', () => {
    assert.deepEqual(readConnectRequest({ ':method': 'POST', ':path': '/' }), { ok: false, message: 'tunn-connect/1 takes GET /check or CONNECT' });
    const r = readConnectRequest({ ':method': 'CONNECT', ':authority': 'bad host!', 'tunn-connect-kind': 'sctp' });
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.message : '', /host: must be a host name such as db\.tunn\.example\.com; kind: .*; token: /);
  });
});

describe('stream refusals', () => {
  it('pins status, header and body, and reads them back', () => {
    const { headers, body } = refusalResponse({ reason: 'forbidden', message: 'bob@x is not on the allow-list' });
    assert.deepEqual(headers, { ':status': 403, 'tunn-refusal': 'forbidden', 'tunn-target-error': 'FORBIDDEN', 'content-type': 'application/json' });
    assert.equal(body, '{"error":{"code":"forbidden","message":"bob@x is not on the allow-list"}}');
    assert.deepEqual(readRefusal(403, headers, body), { reason: 'forbidden', message: 'bob@x is not on the allow-list' });
    assert.equal(refusalResponse({ reason: 'target_refused', message: '' }).headers[':status'], 502);
  });

  // One refusal mechanism: an answer that carries only the wire code (the agent refusing a
  // stream kind, relay-core's refuseStream) still reads as a typed refusal, with what to do.
  it('reads a refusal that has only tunn-target-error (a wire code)', () => {
    assert.deepEqual(readRefusal(501, { 'tunn-target-error': 'STREAM_KIND' }, ''), { reason: 'not_found', message: 'the agent does not serve this kind of stream: upgrade tunn on the machine that runs the tunnel' });
    assert.equal(readRefusal(503, { 'tunn-target-error': 'UNAVAILABLE' }, '').reason, 'target_unreachable');
    assert.equal(readRefusal(403, { 'tunn-target-error': 'FORBIDDEN' }, '').reason, 'forbidden');
  });

  it('reads an answer without a known reason or a JSON body as bad_request with what it did say', () => {
    assert.deepEqual(readRefusal(500, { 'tunn-refusal': 'martian' }, '<html>'), { reason: 'bad_request', message: 'answered 500 (martian)' });
  });
});
