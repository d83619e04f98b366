import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { localhostAwareLookup, parseTarget } from './target.ts';

describe('parseTarget', () => {
  it('accepts a port, host:port and URLs', () => {
    assert.deepEqual(parseTarget('8080'), { protocol: 'http', host: 'localhost', port: 8080, display: 'http://localhost:8080' });
    assert.equal(parseTarget('127.0.0.1:3000').display, 'http://127.0.0.1:3000');
    assert.equal(parseTarget('https://app.localhost:8443').display, 'https://app.localhost:8443');
    assert.equal(parseTarget('http://[::1]:80').display, 'http://[::1]:80');
    assert.equal(parseTarget('http://example.test').port, 80);
  });
  it('refuses what is not a target, naming it', () => {
    for (const bad of ['', 'abc', '0', '70000', 'localhost:', 'ftp://x:1', 'http://x:1/path']) {
      assert.throws(() => parseTarget(bad), (e) => isTunnError(e, 'INVALID_INPUT') && e.message.includes(`"${bad}"`));
    }
  });
});

describe('localhostAwareLookup', () => {
  it('resolves localhost and *.localhost to loopback', async () => {
    const r = await new Promise<string>((resolve, reject) => localhostAwareLookup('demo.tunn.localhost', {}, (e, a) => (e ? reject(e) : resolve(a as string))));
    assert.equal(r, '127.0.0.1');
    const all = await new Promise((resolve, reject) => localhostAwareLookup('LOCALHOST.', { all: true, family: 6 }, (e, a) => (e ? reject(e) : resolve(a))));
    assert.deepEqual(all, [{ address: '::1', family: 6 }]);
  });
});
