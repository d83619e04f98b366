import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { randomName, validateName } from './names.ts';

describe('tunnel names', () => {
  it('accepts DNS labels and lower-cases them', () => {
    assert.equal(validateName('Grafana'), 'grafana');
    assert.equal(validateName('a-1'), 'a-1');
  });
  it('refuses reserved names with NAME_RESERVED', () => {
    for (const n of ['www', 'api', 'admin', 'login', 'auth', 'mail']) {
      assert.throws(() => validateName(n), (e) => isTunnError(e, 'NAME_RESERVED') && e.message.includes(`"${n}" is reserved`));
    }
  });
  it('refuses malformed names with NAME_INVALID', () => {
    for (const n of ['', '-a', 'a-', 'a.b', 'a_b', 'x'.repeat(64), 'xn--abc', 'über']) {
      assert.throws(() => validateName(n), (e) => isTunnError(e, 'NAME_INVALID'));
    }
  });
  it('makes readable random names that are valid', () => {
    for (let i = 0; i < 50; i++) {
      const n = randomName();
      assert.match(n, /^[a-z]+-[a-z]+-[0-9a-f]{4}$/);
      assert.equal(validateName(n), n);
    }
  });
});
