import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizeHost, originFormTarget } from './request-target.ts';

describe('originFormTarget', () => {
  it('passes origin-form, OPTIONS * and CONNECT targets unchanged', () => {
    assert.deepEqual(originFormTarget('GET', '/a?b=c', 'pub.tunn.test', true), { ok: true, target: '/a?b=c' });
    assert.deepEqual(originFormTarget('OPTIONS', '*', 'pub.tunn.test', true), { ok: true, target: '*' });
    assert.deepEqual(originFormTarget('CONNECT', 'pub.tunn.test:443', 'pub.tunn.test', true), { ok: true, target: 'pub.tunn.test:443' });
  });

  it('rewrites an absolute target naming the Host to origin-form', () => {
    const cases: [string, string, boolean, string][] = [
      ['https://pub.tunn.test/x?y=1', 'pub.tunn.test', true, '/x?y=1'],
      ['HTTPS://PUB.tunn.test:443/x', 'pub.tunn.test', true, '/x'],
      ['http://pub.tunn.test', 'pub.tunn.test', false, '/'],
      ['http://pub.tunn.test?q=1', 'pub.tunn.test:80', false, '/?q=1'],
      ['https://pub.tunn.test:8443/x#frag', 'pub.tunn.test:8443', true, '/x'],
      ['http://[::1]:8080/x', '[::1]:8080', false, '/x'],
    ];
    for (const [target, host, secure, want] of cases) assert.deepEqual(originFormTarget('GET', target, host, secure), { ok: true, target: want }, target);
  });

  it('refuses an absolute target whose authority is not the Host (security: RFC 9112 §3.2.2 — a virtual-host origin must not pick another site)', () => {
    const cases: [string, string, boolean][] = [
      ['https://secret.tunn.test/x', 'pub.tunn.test', true],
      ['https://pub.tunn.test:8443/x', 'pub.tunn.test', true],
      ['http://pub.tunn.test/x', 'pub.tunn.test', true], // port 80 vs the TLS connection's 443
      ['https://pub.tunn.test@secret.tunn.test/', 'pub.tunn.test', true],
      ['https:///x', 'pub.tunn.test', true],
    ];
    for (const [target, host, secure] of cases) {
      const r = originFormTarget('GET', target, host, secure);
      assert.equal(r.ok, false, target);
      assert.match((r as { why: string }).why, /Host header/, target);
    }
  });

  // Guards: a path must not name a host. `new URL('//secret.zone/x', base)` (how Node apps read
  // req.url) gives host secret.zone; WHATWG parsers read `/\` the same way.
  it('refuses a path starting with // or /\\ (security: the app would read it as another host), saying what to send', () => {
    for (const [t, host] of [['//secret.tunn.test/x', 'pub.tunn.test'], ['/\\secret.tunn.test/x', 'pub.tunn.test'], ['///x', 'pub.tunn.test'], ['https://pub.tunn.test//secret.tunn.test/x', 'pub.tunn.test'], ['https://pub.tunn.test/\\secret/x', 'pub.tunn.test']] as const) {
      const path = t.startsWith('http') ? t.slice(t.indexOf('/', 8)) : t;
      assert.notEqual(new URL(path, 'http://pub.tunn.test').host, 'pub.tunn.test', `${path} reads as another host`);
      const r = originFormTarget('GET', t, host, true);
      assert.equal(r.ok, false, t);
      assert.match((r as { why: string }).why, /single leading slash/, t);
    }
    for (const t of ['/a//b', '/%2F%2Fsecret/x', '/']) assert.deepEqual(originFormTarget('GET', t, 'pub.tunn.test', true), { ok: true, target: t }, t);
  });

  it('refuses other targets with what to send instead', () => {
    for (const t of ['foo', 'ftp://pub.tunn.test/x', '*', 'pub.tunn.test:443']) {
      const r = originFormTarget('GET', t, 'pub.tunn.test', true);
      assert.equal(r.ok, false, t);
      assert.match((r as { why: string }).why, /path such as \/index\.html/, t);
    }
  });
});

describe('normalizeHost', () => {
  it('lower-cases, drops the port and a trailing dot, refuses junk', () => {
    assert.equal(normalizeHost('PUB.tunn.test.:8443'), 'pub.tunn.test');
    assert.equal(normalizeHost('[::1]:80'), '[::1]');
    assert.equal(normalizeHost('a b'), null);
    assert.equal(normalizeHost('host:port'), null);
  });
});
