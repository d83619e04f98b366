import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALPN_TUNNEL, encodeMessage, MESSAGE_TYPES, parseMessage, PROTOCOL_VERSION, REFUSAL_REASONS, type ControlMessage } from './messages.ts';

describe('wire protocol', () => {
  it('pins the message types, ALPN id and version (append only)', () => {
    assert.deepEqual(MESSAGE_TYPES, ['hello', 'welcome', 'register', 'registered', 'unregister', 'error', 'replaced', 'notice', 'refused']);
    assert.deepEqual(REFUSAL_REASONS, ['ip', 'rate-limit', 'basic-auth', 'sign-in', 'token', 'policy', 'upgrade', 'target', 'unavailable']);
    assert.equal(ALPN_TUNNEL, 'tunn/1');
    assert.equal(PROTOCOL_VERSION, 1);
  });

  it('round-trips a message and rejects unknown or malformed ones', () => {
    const m = { type: 'notice', message: 'hi' } as const;
    assert.deepEqual(parseMessage(encodeMessage(m).trim()), m);
    assert.throws(() => parseMessage('{"type":"bogus"}'), /unknown control message type "bogus"/);
    assert.throws(() => parseMessage('nope'), /not JSON/);
    assert.throws(() => parseMessage('{}'), /no type/);
  });

  it('carries the requests the relay refused for a tunnel, one by one and counted beyond', () => {
    const m: ControlMessage = {
      type: 'refused',
      id: 't0',
      refusals: [{ at: 1_700_000_000_000, method: 'GET', path: '/admin', status: 403, reason: 'policy', who: 'bob@x.com', ip: '192.0.2.7' }],
      more: [{ status: 429, reason: 'rate-limit', count: 57 }],
    };
    assert.deepEqual(parseMessage(encodeMessage(m).trim()), m);
  });
});
