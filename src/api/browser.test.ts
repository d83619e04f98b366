import { getRequestListener } from '@hono/node-server';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchBrowser } from '../../test/support/browser.ts';
import { account } from '../../test/fixtures/identity.ts';
import { stripTunnCookies } from '../auth/cookies.ts';
import { randomBytes } from 'node:crypto';
import { systemClock } from '../lib/clock.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { openStore, type Store } from '../store/store.ts';
import { createIdentity, type Identity } from '../auth/identity.ts';
import type { TunnelPolicy } from '../auth/gate.ts';
import { TokenService } from '../auth/tokens.ts';
import { createApiApp } from './app.ts';

// The login pages in a real headless Chromium, served by the Hono app through
// @hono/node-server on port 0. A stand-in gateway on the same listener answers the tunnel
// host (app.tunn.localhost) through gate.check(), so the whole visitor path runs: visit →
// relay login → dev login → "continue to app… as …?" → host-bound hand-off → page; a visitor
// not allowed → 403 naming them; switch account (a form post); group change applies on the
// next request; a sibling tunnel cannot sign the visitor out.

describe('login pages in Chromium', () => {
  let server: Server;
  let browser: Browser;
  let store: Store;
  let identity: Identity;
  let port: number;
  let tunnel: TunnelPolicy;
  /** Statuses the gate answered POST /.tunn/logout with (seen by the server: a framed 403 is blocked in the page). */
  const logoutPosts: number[] = [];

  before(async () => {
    server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
    store = await openStore(':memory:');
    const relayUrl = `http://tunn.localhost:${port}`;
    const tokens = new TokenService({ store, box: new SecretBox(randomBytes(32)), clock: systemClock, issuer: relayUrl });
    await tokens.init();
    identity = createIdentity({ store, tokens, relayUrl, dev: true, isServedHost: (h) => h.endsWith('.tunn.localhost') });
    const owner = await account(identity, 'owner@example.com');
    await identity.groups.create(owner.id, 'eng', ['alice@example.com']);
    tunnel = { tunnelId: 'app', ownerAccountId: owner.id, ownerEmail: owner.email, allow: ['group:eng'], public: false };
    const api = getRequestListener(createApiApp(identity).fetch);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const host = req.headers.host ?? '';
      if (host === `tunn.localhost:${port}`) return void api(req, res);
      if (host === `evil.tunn.localhost:${port}`) return void sibling(req, res);
      void gateway(req, res, host);
    });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    server.closeAllConnections();
    server.close();
    await store.close();
  });

  async function gateway(req: IncomingMessage, res: ServerResponse, host: string): Promise<void> {
    const headers: [string, string][] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i]!.toLowerCase(), req.rawHeaders[i + 1]!]);
    const d = await identity.gate.check({ method: req.method!, path: req.url!, host, secure: false, clientIp: req.socket.remoteAddress!, headers, upgrade: false }, tunnel);
    if (d.kind === 'respond') {
      if (req.method === 'POST' && req.url!.startsWith('/.tunn/logout')) logoutPosts.push(d.status);
      res.writeHead(d.status, d.headers.flat());
      return void res.end(d.body);
    }
    const forwarded = new Map(headers.filter(([n]) => !d.removeHeaders.includes(n)));
    // The real gateway strips tunn's cookies on every request (src/relay/forward-headers.ts;
    // guarded end to end in test/e2e/edge-hygiene.test.ts); the stand-in does the same.
    const cookie = forwarded.get('cookie');
    if (cookie !== undefined) {
      const rest = stripTunnCookies(cookie);
      if (rest === undefined) forwarded.delete('cookie');
      else forwarded.set('cookie', rest);
    }
    for (const [n, v] of d.setHeaders) forwarded.set(n, v);
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<h1>hello ${forwarded.get('tunn-user-email')}</h1><p id="cookie">${forwarded.get('cookie') ?? ''}</p>`);
  }

  /** A sibling tunnel's page (same site as the relay and app): tries to sign the visitor out. */
  /** A sibling tunnel's page that tries to sign the visitor out: `/form` by <img> and a form, `/sandboxed` from a sandboxed frame. */
  function sibling(req: IncomingMessage, res: ServerResponse): void {
    const logout = `http://app.tunn.localhost:${port}/.tunn/logout`;
    res.writeHead(200, { 'content-type': 'text/html' });
    if (req.url === '/sandboxed') {
      res.end(`<iframe sandbox="allow-forms allow-scripts" srcdoc="<form id=g method=post action='${logout}'></form><script>g.submit()</script>"></iframe>`);
      return;
    }
    // The form comes first: an <img> error can fire before the rest of the page is parsed.
    res.end(`<iframe name="sink"></iframe><form id="f" method="post" action="${logout}" target="sink"></form>
<img src="${logout}" onerror="document.getElementById('f').submit()"><img src="${logout}?switch=1">`);
  }

  it('takes a visitor through the dev login to the tunnel page, 403s a stranger, and switches account', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`http://app.tunn.localhost:${port}/dash`);
    assert.equal(new URL(page.url()).host, `tunn.localhost:${port}`);
    assert.match(await page.textContent('.banner') ?? '', /DEV LOGIN/);
    await page.fill('form[data-dev-login] input[name=email]', 'stranger@example.com');
    await page.click('form[data-dev-login] button');
    // First hand-off to this host in this sign-in: the relay asks, naming the host and the email.
    await page.waitForSelector('form[action="/login/continue"]');
    assert.match(await page.textContent('h1') ?? '', new RegExp(`Continue to app\\.tunn\\.localhost:${port}\\?`));
    assert.match(await page.textContent('body') ?? '', /learns that you are stranger@example\.com/);
    await page.click('form[action="/login/continue"] button');
    await page.waitForURL(`http://app.tunn.localhost:${port}/dash`);
    assert.match(await page.textContent('body') ?? '', /signed in as stranger@example\.com/);
    // Switch account → relay login → sign in as a member → the page, with tunn's cookie stripped.
    await page.click('text=Switch account');
    await page.waitForURL(/\/login\?return=/);
    await page.fill('form[data-dev-login] input[name=email]', 'alice@example.com');
    await page.click('form[data-dev-login] button');
    await page.click('form[action="/login/continue"] button');
    await page.waitForURL(`http://app.tunn.localhost:${port}/`);
    assert.equal(await page.textContent('h1'), 'hello alice@example.com');
    assert.equal(await page.textContent('#cookie'), '');
    const cookies = await ctx.cookies(`http://app.tunn.localhost:${port}`);
    const c = cookies.find((x) => x.name === 'tunn')!;
    assert.equal(c.httpOnly, true);
    assert.equal(c.sameSite, 'Lax');
    assert.equal(c.domain, 'app.tunn.localhost'); // host-only
    // A group change applies on the next request.
    await identity.groups.remove(tunnel.ownerAccountId, 'eng', ['alice@example.com']);
    const r = await page.reload();
    assert.equal(r?.status(), 403);
    await ctx.close();
  });

  // Security property (issue 9, finding 7): a sibling tunnel's <img>, form post or sandboxed
  // (Origin: null) form post to /.tunn/logout does not sign the visitor out.
  it('a sibling tunnel cannot sign the visitor out', async () => {
    await identity.groups.add(tunnel.ownerAccountId, 'eng', ['alice@example.com']);
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`http://app.tunn.localhost:${port}/`);
    await page.fill('form[data-dev-login] input[name=email]', 'alice@example.com');
    await page.click('form[data-dev-login] button');
    await page.click('form[action="/login/continue"] button');
    await page.waitForURL(`http://app.tunn.localhost:${port}/`);
    // Each attempt (a plain form after <img>, then a sandboxed frame's form) reaches the gate and is refused.
    for (const path of ['/form', '/sandboxed']) {
      logoutPosts.length = 0;
      await page.goto(`http://evil.tunn.localhost:${port}${path}`);
      await page.waitForLoadState('load');
      for (let i = 0; logoutPosts.length < 1 && i < 300; i++) await page.waitForTimeout(100);
      assert.deepEqual(logoutPosts, [403], path);
    }
    await page.goto(`http://app.tunn.localhost:${port}/`);
    assert.equal(await page.textContent('h1'), 'hello alice@example.com');
    // Its own page still signs out, by the button.
    await page.goto(`http://app.tunn.localhost:${port}/.tunn/logout`);
    await page.click('form[action^="/.tunn/logout"] button');
    await page.waitForSelector('text=You are signed out of tunn');
    await page.goto(`http://app.tunn.localhost:${port}/`);
    assert.equal(new URL(page.url()).host, `tunn.localhost:${port}`);
    await ctx.close();
  });
});
