import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { consoleRoutes } from './console.ts';

// The console's files on the relay's own host (console.ts), from a build directory made here.

describe('console files', () => {
  let dir: string;
  const relayUrl = new URL('https://tunn.example.test');
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tunn-console-'));
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><script type="module" src="/assets/index-AbC123.js"></script>');
    writeFileSync(join(dir, 'assets', 'index-AbC123.js'), 'console.log(1)');
    writeFileSync(join(dir, 'secret.txt'), 'not for visitors');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  // Guards the console's page policy: no inline script can run, no other site can frame it, and
  // a browser never sniffs a file into another type.
  it('answers every console page with index.html: no-cache, a strict CSP, no framing, nosniff', async () => {
    const app = consoleRoutes({ relayUrl, dir });
    for (const path of ['/', '/groups', '/tokens', '/events', '/me']) {
      const res = await app.request(path);
      assert.equal(res.status, 200, path);
      assert.match(await res.text(), /^<!doctype html>/);
      assert.equal(res.headers.get('cache-control'), 'no-cache');
      const csp = res.headers.get('content-security-policy')!;
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    }
    assert.equal((await app.request('/nope')).status, 404);
  });

  it('serves hashed files for a year, and nothing outside assets/', async () => {
    const app = consoleRoutes({ relayUrl, dir });
    const js = await app.request('/assets/index-AbC123.js');
    assert.equal(js.status, 200);
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    for (const bad of ['/assets/..%2Fsecret.txt', '/assets/%2e%2e%2fsecret.txt', '/assets/missing-1.js', '/assets/secret.txt', '/secret.txt', '/index.html']) {
      const res = await app.request(bad);
      assert.equal(res.status, 404, bad);
      assert.doesNotMatch(await res.text(), /not for visitors/);
    }
  });

  it('without a build, / still says what the relay is and how to build the console', async () => {
    const app = consoleRoutes({ relayUrl, dir: join(dir, 'missing') });
    const res = await app.request('/');
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /^tunn relay for tunn\.example\.test\n/);
    assert.match(text, /Sign in: https:\/\/tunn\.example\.test\/login/);
    assert.match(text, /npm run build:web/);
    const page = await app.request('/groups');
    assert.equal(page.status, 503);
    assert.match(await page.text(), /not built.*npm run build:web/);
  });
});
