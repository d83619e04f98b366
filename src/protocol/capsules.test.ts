import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { setImmediate as turn } from 'node:timers/promises';
import { CapsuleDecoder, DatagramWriter, encodeDatagram, readVarint, writeVarint, type CapsuleDrop, type CapsuleSink } from './capsules.ts';

function decodeAll(chunks: Buffer[], maxDatagram?: number): { datagrams: string[]; drops: [CapsuleDrop, number][] } {
  const datagrams: string[] = [];
  const drops: [CapsuleDrop, number][] = [];
  const d = new CapsuleDecoder({ maxDatagram, onDatagram: (p) => datagrams.push(p.toString('hex')), onDrop: (r, n) => drops.push([r, n]) });
  for (const c of chunks) d.push(c);
  return { datagrams, drops };
}

describe('QUIC varints (RFC 9000 §16, Appendix A.1 examples)', () => {
  const examples: [string, number][] = [
    ['9d7f3e7d', 494878333],
    ['7bbd', 15293],
    ['25', 37],
  ];
  for (const [hex, value] of examples) {
    it(`0x${hex} is ${value}, and ${value} encodes as 0x${hex}`, () => {
      assert.deepEqual(readVarint(Buffer.from(hex, 'hex'), 0), { value, next: hex.length / 2 });
      const out = Buffer.alloc(hex.length / 2);
      writeVarint(out, 0, value);
      assert.equal(out.toString('hex'), hex);
    });
  }
  it('refuses 0xc2197c5eff14e88c (151288809941952652, above 2^53) rather than rounding it', () => {
    assert.throws(() => readVarint(Buffer.from('c2197c5eff14e88c', 'hex'), 0), RangeError);
  });
  it('reads the two-byte encoding of 37 (0x4025), which is not minimal but valid', () => {
    assert.deepEqual(readVarint(Buffer.from('4025', 'hex'), 0), { value: 37, next: 2 });
  });
  it('says "not yet" when the buffer ends inside a varint', () => {
    assert.equal(readVarint(Buffer.from('9d7f3e', 'hex'), 0), undefined);
  });
});

describe('DATAGRAM capsules (RFC 9297 §3.5, context id 0 as RFC 9298)', () => {
  it('pins the encoding: type 0x00, varint length, context id 0, payload', () => {
    assert.equal(encodeDatagram(Buffer.from('hi')).toString('hex'), '0003006869');
    assert.equal(encodeDatagram(Buffer.alloc(0)).toString('hex'), '000100');
    // 100 bytes of payload + 1 context byte = 101 = 0x65 → two-byte varint 0x4065.
    assert.equal(encodeDatagram(Buffer.alloc(100, 0xab)).subarray(0, 4).toString('hex'), '00406500');
    assert.equal(encodeDatagram(Buffer.alloc(100, 0xab)).length, 104);
  });

  it('decodes the same datagrams however the stream is cut', () => {
    const payloads = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(300, 7), Buffer.from('last')];
    const wire = Buffer.concat(payloads.map(encodeDatagram));
    const want = payloads.map((p) => p.toString('hex'));
    for (let cut = 0; cut <= wire.length; cut++) {
      assert.deepEqual(decodeAll([wire.subarray(0, cut), wire.subarray(cut)]).datagrams, want, `cut at ${cut}`);
    }
    // One byte at a time.
    assert.deepEqual(decodeAll([...wire].map((b) => Buffer.from([b]))).datagrams, want);
  });

  it('drops and counts a datagram over the limit without buffering it, and carries on after it', () => {
    const wire = Buffer.concat([encodeDatagram(Buffer.from('ok')), encodeDatagram(Buffer.alloc(1000)), encodeDatagram(Buffer.from('after'))]);
    const dec = new CapsuleDecoder({ maxDatagram: 512, onDatagram: () => {} });
    let held = 0;
    for (let i = 0; i < wire.length; i += 7) {
      dec.push(wire.subarray(i, i + 7));
      held = Math.max(held, dec.held);
    }
    assert.ok(held <= 16 + 512 + 1, `the skipped capsule is counted down, not held (held ${held})`);
    const r = decodeAll([wire.subarray(0, 20), wire.subarray(20)], 512);
    assert.deepEqual(r.datagrams, [Buffer.from('ok').toString('hex'), Buffer.from('after').toString('hex')]);
    assert.deepEqual(r.drops, [['oversize', 1001]]);
    // Exactly at the limit passes.
    assert.equal(decodeAll([encodeDatagram(Buffer.alloc(512))], 512).datagrams.length, 1);
  });

  it('skips capsules of unknown types and datagrams of another context (RFC 9297 §3.2)', () => {
    const unknown = Buffer.from('17' + '03' + 'aabbcc', 'hex');
    const otherContext = Buffer.from('00' + '03' + '02' + 'ffff', 'hex');
    const r = decodeAll([Buffer.concat([unknown, otherContext, encodeDatagram(Buffer.from('x'))])]);
    assert.deepEqual(r.datagrams, ['78']);
    assert.deepEqual(r.drops, [['unknown-capsule', 3], ['unknown-context', 3]]);
  });

  it('round-trips any datagrams cut at any points (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 10 }), (payloads, cutsRaw) => {
        const wire = Buffer.concat(payloads.map(encodeDatagram));
        const cuts = [...new Set(cutsRaw.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const c of [...cuts, wire.length]) {
          chunks.push(wire.subarray(prev, c));
          prev = c;
        }
        assert.deepEqual(decodeAll(chunks).datagrams, payloads.map((p) => Buffer.from(p).toString('hex')));
      }),
    );
  });
});

describe('DatagramWriter (one stream write per event-loop turn)', () => {
  function sink(): CapsuleSink & { chunks: Buffer[]; ended: boolean } {
    const s = {
      chunks: [] as Buffer[],
      ended: false,
      writableLength: 0,
      get writableEnded() {
        return s.ended;
      },
      destroyed: false,
      write(c: Buffer) {
        s.chunks.push(c);
        return true;
      },
    };
    return s;
  }

  it("writes one turn's datagrams as one chunk with the same bytes as one capsule each", async () => {
    const out = sink();
    const w = new DatagramWriter(out);
    const payloads = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(300, 7), Buffer.alloc(20_000, 9)];
    for (const p of payloads) w.write(p);
    assert.equal(out.chunks.length, 0, 'nothing is written before the turn ends');
    assert.equal(w.queued, Buffer.concat(payloads.map(encodeDatagram)).length, 'queued counts the batch, for backpressure');
    await turn();
    assert.equal(out.chunks.length, 1);
    assert.deepEqual(out.chunks[0], Buffer.concat(payloads.map(encodeDatagram)));
    assert.equal(w.queued, 0);
    w.write(Buffer.from('next'));
    await turn();
    assert.deepEqual(out.chunks.map((c) => c.toString('hex')).slice(1), [encodeDatagram(Buffer.from('next')).toString('hex')]);
  });

  it('flush() writes at once (before the stream ends), and nothing is written to an ended stream', async () => {
    const out = sink();
    const w = new DatagramWriter(out);
    w.write(Buffer.from('x'));
    w.flush();
    assert.deepEqual(out.chunks, [encodeDatagram(Buffer.from('x'))]);
    w.write(Buffer.from('y'));
    out.ended = true;
    await turn();
    assert.equal(out.chunks.length, 1);
    assert.equal(w.queued, 0);
  });
});
