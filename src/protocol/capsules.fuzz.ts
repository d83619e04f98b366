import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cuts, fuzzTarget, mutated, randomBytes, split, type FuzzTarget } from '../lib/fuzz.ts';
import { CapsuleDecoder, encodeDatagram } from './capsules.ts';

// Fuzz target of the capsule decoder (capsules.ts): it reads what a `tunn connect` client or an
// agent sends on a UDP flow's stream. Properties: it delivers the same datagrams and drops
// whether the bytes come whole or split anywhere; it never delivers a datagram over the limit;
// it throws nothing but the RangeError of a varint above 2^53; what it holds is bounded by one
// capsule head plus one datagram, never by a capsule's claimed length (the 2 GiB "datagram" a
// peer announces is skipped as it arrives).

const MAX = 1200;

const valid = fc.array(fc.uint8Array({ maxLength: 1500 }), { maxLength: 6 }).map((ps) => Buffer.concat(ps.map((p) => encodeDatagram(p))));
const input = fc.oneof({ weight: 4, arbitrary: valid }, mutated(valid), randomBytes(2048));

function decode(chunks: Buffer[]): { events: string[]; maxHeld: number } {
  const events: string[] = [];
  const d = new CapsuleDecoder({
    maxDatagram: MAX,
    onDatagram: (p) => {
      assert.ok(p.length <= MAX, `a ${p.length}-byte datagram delivered over the ${MAX}-byte limit`);
      events.push(`d:${p.toString('hex')}`);
    },
    onDrop: (reason, n) => events.push(`drop:${reason}:${n}`),
  });
  let maxHeld = 0;
  for (const c of chunks) {
    try {
      d.push(c);
    } catch (err) {
      assert.ok(err instanceof RangeError, `push threw ${String(err)}`);
      events.push('range-error');
      break;
    }
    maxHeld = Math.max(maxHeld, d.held);
  }
  assert.ok(maxHeld <= 16 + MAX + 8, `${maxHeld} bytes held: more than a capsule head and one datagram`);
  return { events, maxHeld };
}

export const targets: FuzzTarget[] = [
  fuzzTarget({
    name: 'capsules',
    about: 'capsule decoder: same datagrams and drops whole or split anywhere; nothing over the limit delivered; only RangeError thrown',
    input: fc.tuple(input, cuts),
    check: ([bytes, at]) => {
      const whole = decode([bytes]);
      const pieces = decode(split(bytes, at));
      // A RangeError ends reading where it happens; whole and split agree on everything before it.
      if (!whole.events.includes('range-error')) assert.deepEqual(pieces.events, whole.events, 'the decoder read the bytes split differently from the bytes whole');
    },
  }),
];
