import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALPN_TUNNEL, encodeMessage, MESSAGE_TYPES, parseMessage, PROTOCOL_VERSION } from './messages.ts';

describe('wire protocol', () => {
  it('pins the message types, ALPN id and version (append only)', () => {
    assert.deepEqual(MESSAGE_TYPES, ['hello', 'welcome', 'register', 'registered', 'unregister', 'error', 'replaced', 'notice']);
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
});
