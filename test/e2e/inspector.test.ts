import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchBrowser } from '../support/browser.ts';
import { createToken, request, ROOT, startAgent, startCli, startRelay, until, type AgentHandle, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

// The agent's inspector end to end: a real relay, a private tunnel, a visitor signed in
// through the relay's login in Chromium, and the inspector page in a second Chromium context.
// Writes docs/inspector.png (the README's screenshot).

describe('inspector: see every request, who sent it, and replay it', () => {
  let relay: RelayHandle;
  let origin: Origin;
  let agent: AgentHandle;
  let browser: Browser;
  let inspectUrl: URL;
  let secret: string;
  let visitor: BrowserContext;
  let visitorPage: Page;
  let inspector: Page;
  let appUrl: string;

  /** The inspector's API with the bearer secret, as a script would use it. */
  async function api(path: string): Promise<any> {
    const r = await request(`${inspectUrl.origin}${path}`, { headers: { Authorization: `Bearer ${secret}` } });
    assert.equal(r.status, 200, r.text);
    return JSON.parse(r.text);
  }

  before(async () => {
    origin = await startOrigin();
    relay = await startRelay();
    const token = await createToken(relay, 'alice@example.com');
    agent = await startAgent(relay, token, origin.port, ['-n', 'shop', '-a', 'bob@example.com', '--inspect', '127.0.0.1:0']);
    const ready = agent.proc.lines.find((l) => l.event === 'ready')!;
    inspectUrl = new URL(String(ready.inspectUrl));
    secret = new URLSearchParams(inspectUrl.hash.slice(1)).get('token')!;
    assert.match(secret, /^[A-Za-z0-9_-]{32}$/, 'the ready line carries a per-run secret, in the fragment');
    appUrl = `http://shop.tunn.localhost:${relay.httpPort}`;
    browser = await launchBrowser();
    visitor = await browser.newContext({ ignoreHTTPSErrors: true });
    visitorPage = await visitor.newPage();
    await visitorPage.goto(`${appUrl}/echo`);
    await visitorPage.fill('form[data-dev-login] input[name=email]', 'bob@example.com');
    await visitorPage.click('form[data-dev-login] button');
    // The first hand-off to a host asks the visitor (issue 9, finding 9).
    await visitorPage.click('form[action="/login/continue"] button');
    await visitorPage.waitForURL(`${appUrl}/echo`);
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 800 } });
    inspector = await ctx.newPage();
  });
  after(async () => {
    await browser?.close();
    await agent?.stop();
    await relay?.stop();
    await origin?.close();
  });

  it('lists requests live with the visitor the relay verified, and shows a JSON body pretty', async () => {
    await inspector.goto(inspectUrl.href);
    await inspector.waitForSelector('#live:text("live")');
    assert.equal(inspector.url(), `${inspectUrl.origin}/`, 'the secret leaves the address bar');
    // Property: the secret is never a cookie (cookies reach every port of 127.0.0.1, RFC 6265
    // §8.5, so the developer's own app would get it); the page keeps it for its origin only.
    assert.deepEqual(await inspector.context().cookies(), []);
    assert.equal(await inspector.evaluate(() => sessionStorage.getItem('tunn-inspector-token')), secret);
    // While the page is open: a JSON POST from the signed-in visitor.
    const status = await visitorPage.evaluate(async () => (await fetch('/echo?from=browser', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ item: 'lamp', qty: 2, password: 'hunter2' }) })).status);
    assert.equal(status, 200);
    const row = inspector.locator('#requests tbody tr', { hasText: '/echo?from=browser' });
    await row.waitFor();
    assert.equal(await row.locator('.visitor').textContent(), 'bob@example.com');
    assert.equal(await row.locator('.method').textContent(), 'POST');
    await row.locator('.status:text("200")').waitFor();
    await row.click();
    const pretty = await inspector.locator('#detail .body.request pre.json').textContent();
    assert.match(pretty!, /^\{\n {2}"item": "lamp",\n {2}"qty": 2,/);
    // Redaction (property: secrets hidden by default): the password and tunn's assertion.
    assert.match(pretty!, /"password": "\[redacted\]"/);
    const heads = await inspector.locator('#detail table.headers').first().textContent();
    assert.match(heads!, /Tunn-Jwt-Assertion\[redacted\]/i);
    assert.doesNotMatch(heads!, /eyJ/);
    assert.match((await inspector.locator('#detail .body.response pre.json').textContent())!, /"from=browser"|"\/echo\?from=browser"/);
    await inspector.screenshot({ path: join(ROOT, 'docs/inspector.png') });
  });

  it('replays a request to the target as it was, and edited', async () => {
    const before = (await api('/api/requests')).requests.length;
    await inspector.click('#replay');
    await inspector.locator('#replay-result:text-matches("Replayed as #\\\\d+: 200")').waitFor();
    const replayRow = inspector.locator('#requests tbody tr', { hasText: 'replay of #' }).first();
    await replayRow.waitFor();
    const list = (await api('/api/requests')).requests;
    assert.equal(list.length, before + 1);
    const replayed = await api(`/api/requests/${list[0].id}`);
    assert.equal(replayed.replayOf, list[1].id);
    // The echo from the target proves the replay reached it, with the original (unredacted) body.
    const echoed = JSON.parse(replayed.responseBody.view.text);
    assert.equal(JSON.parse(echoed.body).password, 'hunter2');
    assert.equal(echoed.headers['tunn-user-email'], 'bob@example.com');

    await inspector.click('#edit-replay');
    await inspector.fill('form.edit input[name=path]', '/echo?edited=yes');
    await inspector.fill('form.edit input[name=method]', 'PUT');
    await inspector.fill('form.edit textarea[name=body]', '{"edited":true}');
    await inspector.click('form.edit button[type=submit]');
    await inspector.locator('#requests tbody tr', { hasText: '/echo?edited=yes' }).waitFor();
    const edited = (await api('/api/requests?path=edited')).requests[0];
    const detail = await api(`/api/requests/${edited.id}`);
    const got = JSON.parse(detail.responseBody.view.text);
    assert.deepEqual([got.method, got.url, got.body], ['PUT', '/echo?edited=yes', '{"edited":true}']);
  });

  // Property: captured bodies never run as script in the inspector's origin; images only
  // through <img> of a type checked from their bytes.
  it('shows an image body as an image and an HTML body as inert text', async () => {
    const png = '89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c63f8cfc0f01f0005000201a0e1d8e30000000049454e44ae426082';
    await visitorPage.evaluate(async (hex) => {
      const bytes = new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
      await fetch('/echo?kind=png', { method: 'POST', headers: { 'content-type': 'image/png' }, body: bytes });
      await fetch('/echo?kind=html', { method: 'POST', headers: { 'content-type': 'text/html' }, body: '<script>window.pwned=1</script><img src=x onerror="window.pwned=2"><b>bold</b>' });
    }, png);
    await inspector.locator('#requests tbody tr', { hasText: '/echo?kind=png' }).click();
    const img = inspector.locator('#detail .body.request img.body');
    await img.waitFor();
    await until(async () => (await img.evaluate((i: HTMLImageElement) => i.complete && i.naturalWidth)) === 1, 10_000, 'image loaded');
    // Downloads go through the API with the bearer too (no cookie to carry them).
    const [download] = await Promise.all([inspector.waitForEvent('download'), inspector.locator('#detail .body.request button.download').click()]);
    assert.match(download.suggestedFilename(), /^request-\d+-request\.bin$/);
    const saved: Buffer[] = [];
    for await (const c of (await download.createReadStream()) as AsyncIterable<Buffer>) saved.push(c);
    assert.equal(Buffer.concat(saved).toString('hex'), png);
    await inspector.locator('#requests tbody tr', { hasText: '/echo?kind=html' }).click();
    const text = inspector.locator('#detail .body.request pre.text');
    await text.waitFor();
    assert.match((await text.textContent())!, /^<script>window\.pwned=1<\/script><img src=x onerror=/);
    assert.equal(await inspector.locator('#detail b').count(), 0, 'no markup from the body');
    assert.equal(await inspector.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined);
  });

  it('shows a WebSocket connection with its first messages', async () => {
    const echoed = await visitorPage.evaluate(
      () =>
        new Promise<string>((resolve, reject) => {
          const ws = new WebSocket(location.origin.replace('http', 'ws') + '/ws');
          ws.onerror = () => reject(new Error('websocket failed'));
          ws.onmessage = (m) => {
            if (m.data === 'ping from the visitor') {
              ws.close();
              resolve(m.data);
            } else ws.send('ping from the visitor');
          };
        }),
    );
    assert.equal(echoed, 'ping from the visitor');
    let detail: any;
    await until(async () => {
      const ws = (await api('/api/requests?path=/ws')).requests[0];
      detail = ws && (await api(`/api/requests/${ws.id}`));
      return detail?.websocketMessages.filter((m: { opcode: string }) => m.opcode === 'text').length >= 3;
    }, 10_000, 'websocket messages');
    assert.equal(detail.status, 101);
    const texts = detail.websocketMessages.filter((m: { opcode: string }) => m.opcode === 'text').map((m: { direction: string; data: string }) => `${m.direction} ${m.data}`);
    assert.ok(texts.includes('to-target ping from the visitor'), JSON.stringify(texts));
    assert.ok(texts.includes('to-client ping from the visitor'), JSON.stringify(texts));
    assert.ok(texts.some((t: string) => t.startsWith('to-client hello')), JSON.stringify(texts));
  });

  it('filters by visitor and clears', async () => {
    await request(`${appUrl}/public-probe`); // refused by the relay (401): never reaches the agent
    await inspector.fill('#filters input[name=visitor]', 'nobody-matches');
    await until(async () => (await inspector.locator('#requests tbody tr').count()) === 0, 10_000, 'filtered list');
    await inspector.fill('#filters input[name=visitor]', 'bob@');
    await until(async () => (await inspector.locator('#requests tbody tr').count()) >= 3, 10_000, 'bob rows');
    await inspector.click('#clear');
    await until(async () => (await inspector.locator('#requests tbody tr').count()) === 0, 10_000, 'cleared');
    assert.equal((await api('/api/requests')).requests.length, 0);
  });

  // Property: DNS rebinding — a name that resolves to 127.0.0.1 does not reach the inspector.
  it('refuses a request with Host: evil.example, in Chromium and from a script', async () => {
    const page = await (await browser.newContext()).newPage();
    const res = await page.goto(`http://evil.example:${inspectUrl.port}/#token=${secret}`);
    assert.equal(res?.status(), 403);
    assert.match((await page.textContent('body'))!, /DNS rebinding is refused/);
    const r = await request(`${inspectUrl.origin}/api/requests`, { headers: { Host: 'evil.example', Authorization: `Bearer ${secret}` } });
    assert.equal(r.status, 403);
  });

  // Property: a web page the developer visits cannot replay or read captured traffic, even one
  // on another loopback port (same site as the inspector), and that port never gets a cookie.
  it('refuses a cross-site POST to the API from a page in the same browser', async () => {
    await visitorPage.evaluate(() => fetch('/echo?seed=1'));
    await until(async () => (await api('/api/requests')).requests.length === 1, 10_000, 'seed request');
    const id = (await api('/api/requests')).requests[0].id;
    const evil = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>evil</title><p>hi</p>');
    });
    evil.listen(0, '127.0.0.1');
    await once(evil, 'listening');
    try {
      const page = await inspector.context().newPage();
      let cookieSeen: string | undefined;
      evil.on('request', (req) => (cookieSeen ??= req.headers.cookie));
      await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
      assert.equal(cookieSeen, undefined, 'the app on another loopback port receives no inspector cookie');
      const target = `${inspectUrl.origin}/api/requests/${id}/replay`;
      const outcome = await page.evaluate(async (url) => {
        const noCors = await fetch(url, { method: 'POST', mode: 'no-cors', credentials: 'include', body: '{}' }).then(() => 'sent', (e) => String(e));
        const cors = await fetch(url, { method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json' }, body: '{}' }).then((r) => `read ${r.status}`, () => 'blocked');
        const read = await fetch(url.replace(/\/\d+\/replay$/, ''), { credentials: 'include' }).then((r) => r.text(), () => 'blocked');
        return { noCors, cors, read };
      }, target);
      assert.equal(outcome.cors, 'blocked');
      assert.equal(outcome.read, 'blocked');
      // A form POST (a navigation: no CORS at all) is refused by the inspector itself.
      await page.setContent(`<form method="POST" action="${target}" enctype="text/plain"><input name="x" value="1"></form>`);
      const [nav] = await Promise.all([page.waitForNavigation(), page.evaluate(() => document.querySelector('form')!.submit())]);
      assert.equal(nav?.status(), 403);
      assert.match((await page.textContent('body'))!, /refused/);
      const after = (await api('/api/requests')).requests;
      assert.equal(after.length, 1, 'no replay happened');
    } finally {
      evil.close();
    }
  });

  // Every user-facing error says what to do: a page opened without the secret (a new tab on the
  // bare address) or with a previous run's secret says to open the URL tunn printed.
  it('a page without the secret, or with a stale one, says to open the printed URL', async () => {
    const ctx = await browser.newContext();
    try {
      const bare = await ctx.newPage();
      await bare.goto(`${inspectUrl.origin}/`);
      await bare.locator('#problem:text-matches("open the Inspect URL tunn printed")').waitFor();
      assert.equal(await bare.textContent('#live'), 'not connected');
      const stale = await ctx.newPage();
      await stale.goto(`${inspectUrl.origin}/#token=${'x'.repeat(32)}`);
      await stale.locator('#problem:text-matches("missing or wrong inspector secret.*open the Inspect URL it printed last")').waitFor();
    } finally {
      await ctx.close();
    }
  });

  it('prints the inspector in the ready line only when on', async () => {
    const token = await createToken(relay, 'carol@example.com');
    const human = startCli([String(origin.port), '-n', 'printed', '--relay', relay.url, '--token', token, '--relay-ca', relay.caPath, '--inspect', '127.0.0.1:0']);
    try {
      const line = await human.waitFor((l) => /Inspect: /.test(String(l.raw ?? '')));
      const printed = new URL(/Inspect: (\S+)/.exec(String(line.raw))![1]!);
      assert.equal(printed.hostname, '127.0.0.1');
      const printedSecret = new URLSearchParams(printed.hash.slice(1)).get('token')!;
      assert.match(printedSecret, /^[A-Za-z0-9_-]{32}$/);
      const opened = await request(printed.href);
      assert.equal(opened.status, 200, 'the printed URL opens the inspector');
      assert.equal(opened.headers['set-cookie'], undefined);
      assert.equal((await request(`${printed.origin}/api/requests`, { headers: { Authorization: `Bearer ${printedSecret}` } })).status, 200);
    } finally {
      await human.kill();
    }
    const off = await startAgent(relay, token, origin.port, ['-n', 'quiet-one', '--no-inspect']);
    try {
      const ready = off.proc.lines.find((l) => l.event === 'ready')!;
      assert.equal(ready.inspectUrl, undefined);
    } finally {
      await off.stop();
    }
  });
});
