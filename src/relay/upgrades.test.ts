import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Http1Framer, type MessageHead } from '../lib/http1.ts';
import { isTunnError } from '../lib/errors.ts';
import { decideUpgrade, parseAllowUpgrade } from './upgrades.ts';

function head(lines: string[]): MessageHead {
  let out: MessageHead | undefined;
  const raw = `GET / HTTP/1.1\r\nHost: pub.tunn.test\r\n${lines.map((l) => l + '\r\n').join('')}\r\n`;
  new Http1Framer({ kind: 'request' }, { onHead: (h) => (out = h), onBody: () => {}, onMessageEnd: () => {} }).execute(Buffer.from(raw, 'latin1'));
  return out!;
}

describe('decideUpgrade', () => {
  it('forwards WebSocket always, and nothing that is not an upgrade request', () => {
    assert.deepEqual(decideUpgrade(head(['Connection: Upgrade', 'Upgrade: WebSocket']), undefined), { kind: 'forward', protocols: 'WebSocket' });
    assert.deepEqual(decideUpgrade(head(['Upgrade: websocket']), undefined), { kind: 'none' });
    assert.deepEqual(decideUpgrade(head([]), undefined), { kind: 'none' });
  });

  it('never forwards h2c, even when allowed (security: HTTP/2 frames after a 101 would carry unchecked identity headers)', () => {
    const h2c = head(['Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAAQAAP__']);
    assert.deepEqual(decideUpgrade(h2c, undefined), { kind: 'strip' });
    assert.deepEqual(decideUpgrade(h2c, ['h2c']), { kind: 'strip' });
    assert.deepEqual(decideUpgrade(head(['Connection: upgrade', 'Upgrade: HTTP/2.0']), undefined), { kind: 'strip' });
    // Offered next to WebSocket: only WebSocket is forwarded.
    assert.deepEqual(decideUpgrade(head(['Connection: upgrade', 'Upgrade: h2c, websocket']), undefined), { kind: 'forward', protocols: 'websocket' });
  });

  it('refuses other protocols unless the tunnel opted in (security: only what the owner chose goes raw)', () => {
    const irc = head(['Connection: upgrade', 'Upgrade: IRC/6.9']);
    assert.deepEqual(decideUpgrade(irc, undefined), { kind: 'refuse', protocols: ['IRC/6.9'] });
    assert.deepEqual(decideUpgrade(irc, ['irc']), { kind: 'forward', protocols: 'IRC/6.9' });
    assert.deepEqual(decideUpgrade(head(['Connection: upgrade', 'Upgrade: h2c, foo']), undefined), { kind: 'refuse', protocols: ['foo'] });
  });
});

describe('parseAllowUpgrade', () => {
  it('lower-cases and de-duplicates protocol names', () => {
    assert.deepEqual(parseAllowUpgrade(['IRC', 'irc', 'foo']), ['irc', 'foo']);
  });

  it('refuses h2c and junk with what to do', () => {
    for (const [bad, re] of [['h2c', /never forwarded.*HTTPS instead/], ['HTTP', /never forwarded/], ['a b', /expected a protocol name/], [42, /expected a protocol name/]] as const) {
      assert.throws(() => parseAllowUpgrade([bad]), (e: unknown) => isTunnError(e, 'INVALID_INPUT') && re.test(e.message));
    }
  });
});
