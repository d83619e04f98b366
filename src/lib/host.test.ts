import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeHost } from './host.ts';

test('normalizeHost: lower-cases, drops one trailing root dot and surrounding blanks', () => {
  assert.equal(normalizeHost('Grafana.Example.COM.'), 'grafana.example.com');
  assert.equal(normalizeHost('  a.b  '), 'a.b');
  assert.equal(normalizeHost('a.b'), 'a.b');
  assert.equal(normalizeHost(''), '');
});
