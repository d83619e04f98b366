import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePortRange } from './port-range.ts';

describe('parsePortRange', () => {
  it('reads LOW-HIGH and a single port', () => {
    assert.deepEqual(parsePortRange('20000-20999'), { ok: true, range: { low: 20000, high: 20999 } });
    assert.deepEqual(parsePortRange(' 7000 - 7001 '), { ok: true, range: { low: 7000, high: 7001 } });
    assert.deepEqual(parsePortRange('25565'), { ok: true, range: { low: 25565, high: 25565 } });
  });
  it('says what is wrong and what to write', () => {
    assert.deepEqual(parsePortRange('20000:20999'), { ok: false, message: '"20000:20999" is not a port range: write LOW-HIGH, e.g. 20000-20999' });
    assert.deepEqual(parsePortRange('0-10'), { ok: false, message: '"0-10": ports are 1-65535' });
    assert.deepEqual(parsePortRange('60000-70000'), { ok: false, message: '"60000-70000": ports are 1-65535' });
    assert.deepEqual(parsePortRange('21000-20000'), { ok: false, message: '"21000-20000": the low port comes first, e.g. 20000-21000' });
  });
});
