import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BufferPool } from './buffer-pool.ts';

describe('BufferPool', () => {
  it('hands back the buffers it was given, up to its limit', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.take();
    const b = pool.take();
    const c = pool.take();
    assert.equal(a.length, 1024);
    assert.notEqual(a.buffer, b.buffer);
    pool.give(a);
    pool.give(b);
    pool.give(c);
    assert.equal(pool.idle, 2, 'keeps at most maxFree idle buffers');
    const again = [pool.take(), pool.take()];
    assert.ok(again.includes(a) && again.includes(b), 'reuses returned buffers');
    assert.equal(pool.idle, 0);
    assert.notEqual(pool.take(), c, 'allocates once the free list is empty');
  });

  it('refuses buffers of another size', () => {
    const pool = new BufferPool(1024, 4);
    pool.give(Buffer.alloc(10));
    assert.equal(pool.idle, 0);
  });
});
