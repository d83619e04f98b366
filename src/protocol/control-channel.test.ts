import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import { ControlChannel } from './control-channel.ts';
import type { ControlMessage } from './messages.ts';

/** Pushes `pieces` into a channel over a real stream and returns what it emitted. */
async function read(pieces: (string | Buffer)[]): Promise<{ events: string[]; destroyed: boolean }> {
  const stream = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
  const ch = new ControlChannel(stream);
  const events: string[] = [];
  ch.on('message', (m: ControlMessage) => events.push(`message ${m.type}`));
  ch.on('invalid', (e) => events.push(`invalid ${e.message}`));
  await new Promise((r) => setImmediate(r));
  for (const p of pieces) if (!stream.destroyed) stream.push(p);
  await new Promise((r) => setImmediate(r));
  return { events, destroyed: stream.destroyed };
}

describe('ControlChannel', () => {
  it('reads JSON lines split anywhere, inside a UTF-8 character too', async () => {
    const bytes = Buffer.from('{"type":"notice","message":"caf\u00e9 \u{1f600}"}\n\n{"type":"unregister","id":"a"}\r\n');
    for (let cut = 0; cut <= bytes.length; cut++) {
      assert.deepEqual(await read([bytes.subarray(0, cut), bytes.subarray(cut)]), { events: ['message notice', 'message unregister'], destroyed: false });
    }
  });

  // Guards: a peer cannot make the relay hold and parse a control line over the limit by sending
  // it in one chunk (found by npm run fuzz: a 300 KiB line in one DATA frame was accepted, the
  // same line in two frames refused).
  it('refuses a line over 256 KiB whether it comes whole or in pieces', async () => {
    const long = JSON.stringify({ type: 'notice', message: 'x'.repeat(300 * 1024) }) + '\n';
    const refused = { events: ['message notice', `invalid control message too long (over ${256 * 1024} characters)`], destroyed: true };
    const first = '{"type":"notice","message":"before"}\n';
    assert.deepEqual(await read([first + long + first]), refused);
    assert.deepEqual(await read([first + long.slice(0, 1000), long.slice(1000) + first]), refused);
    assert.deepEqual(await read([JSON.stringify({ type: 'notice', message: 'x'.repeat(256 * 1024 - 40) }) + '\n']), { events: ['message notice'], destroyed: false });
  });
});
