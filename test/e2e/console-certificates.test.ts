import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { buildWeb } from '../../scripts/build-web.ts';
import type { DnsServer } from '../../src/dns/server.ts';
import { Zone } from '../../src/dns/zone.ts';
import { launchBrowser } from '../support/browser.ts';
import type { ZoneRoute } from '../support/dns-forwarder.ts';
import type { Pebble } from '../support/pebble.ts';
import { startPebbleRelayDns } from '../support/pebble-relay-dns.ts';
import { axe, CONSOLE_OUT, devLogin, shot } from './console-browser.ts';
import { createToken, request, startCli, tmpDir, type Proc, type RelayHandle } from './harness.ts';

// The console's Certificates page against a real relay issuing from a real Pebble: a custom
// domain's wildcard shows `pending_issue` while its DNS records are missing, and turns `issued`
// (issuer, expiry) once they are there and the domain verifies — on a page left open, which
// asks the API again by itself every 15 s (no reload, no click). The customer's zone is on a
// test nameserver, the relay's zone on the relay's own DNS server, one forwarder for Pebble and
// the relay's verifier (as test/e2e/domains.test.ts).

const RELAY = 'tunn.localhost';
const DOMAIN = 'shop.example.test';

describe('web console: Certificates with Pebble', { timeout: 240_000 }, () => {
  const dir = tmpDir('tunn-console-certs-');
  const customer = new Zone('example.test');
  const routes: ZoneRoute[] = [];
  let customerDns: DnsServer;
  let forwarder: DnsServer;
  let pebble: Pebble;
  let relayProc: Proc;
  let relay: RelayHandle;
  let token: string;
  let browser: Browser;
  let page: Page;
  /** A /v1 call with the owner's token, trusting Pebble's root (the relay's certificate is Pebble's). */
  const api = (method: string, path: string, body?: unknown) =>
    request(`${relay.url}${path}`, { method, ca: pebble.rootPem, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });

  before(async () => {
    await buildWeb({ quiet: true });
    mkdirSync(CONSOLE_OUT, { recursive: true });
    const world = await startPebbleRelayDns({ relayDomain: RELAY, customer, routes, dir: dir.path });
    ({ customerDns, forwarder, pebble } = world);
    const { dnsPort, httpsPort, httpPort, rootFile } = world;
    const dataDir = join(dir.path, 'relay');
    // --dev for its sign-in form (any email, no password); certificates from Pebble all the same.
    relayProc = startCli([
      'relay', '--dev', '--domain', RELAY, '--listen', '127.0.0.1', '--https-port', String(httpsPort), '--http-port', String(httpPort), '--data-dir', dataDir, '--json',
      '--acme-directory', pebble.directoryUrl, '--acme-ca', join(dir.path, 'pebble-https-ca.pem'), '--acme-email', 'ops@example.test',
      '--dns-port', String(dnsPort), '--dns-resolver', `127.0.0.1:${forwarder.port}`, '--public-ip', '127.0.0.1',
    ]);
    const ready = await relayProc.waitFor((l) => l.event === 'ready', 40_000);
    if (ready.certificate === 'pending') await relayProc.waitFor((l) => l.event === 'certificate' && l.state === 'ready', 40_000);
    relay = { proc: relayProc, dataDir, domain: RELAY, httpsPort, httpPort: Number(ready.httpPort), caPath: rootFile, ca: pebble.rootPem, url: `https://${RELAY}:${httpsPort}`, stop: () => relayProc.kill() };
    token = await createToken(relay, 'owner@example.test');
    browser = await launchBrowser();
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 375, height: 800 }, colorScheme: 'light' });
    page = await ctx.newPage();
  });
  after(async () => {
    await browser?.close();
    await relayProc?.kill();
    await pebble?.stop();
    await Promise.all([customerDns?.close(), forwarder?.close()]);
    dir.remove();
  });

  it('a custom domain\'s certificate goes pending_issue → issued on the open page, by itself', async () => {
    const added = await api('POST', '/v1/domains', { domain: DOMAIN, verify: false });
    assert.equal(added.status, 201, added.text);
    const records = (JSON.parse(added.text) as { records: { name: string; type: 'CNAME'; value: string }[] }).records;

    await page.goto(`${relay.url}/certificates`);
    await devLogin(page, 'owner@example.test');
    await page.getByRole('heading', { level: 1, name: 'Certificates' }).waitFor();
    const card = page.getByRole('list', { name: 'Certificates' }).getByRole('listitem').filter({ has: page.getByRole('heading', { name: `*.${DOMAIN}`, exact: true }) });
    await card.locator('.badge', { hasText: /^pending_issue$/ }).waitFor();
    // The relay's own wildcard, from Pebble at start.
    const own = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: `*.${RELAY}`, exact: true }) });
    await own.locator('.badge', { hasText: /^issued$/ }).waitFor();
    await shot(page, 'certificates-pending');
    await axe(page, 'Certificates-pending');

    // A mark in the page: still there at the end means no reload happened in between.
    await page.evaluate(() => ((globalThis as { tunnMark?: number }).tunnMark = 1));
    for (const r of records) customer.add({ name: r.name, type: r.type, value: r.value });
    const verified = await api('POST', `/v1/domains/${DOMAIN}/verify`);
    assert.equal((JSON.parse(verified.text) as { verified: boolean }).verified, true, verified.text);

    await card.locator('.badge', { hasText: /^issued$/ }).waitFor({ timeout: 90_000 });
    assert.equal(await page.evaluate(() => (globalThis as { tunnMark?: number }).tunnMark), 1, 'updated without a reload');
    assert.match((await card.locator('dt:has-text("Issuer") + dd').textContent()) ?? '', /^acme:https:\/\/127\.0\.0\.1:\d+\/dir$/);
    assert.notEqual((await card.locator('dt:has-text("Valid until") + dd').textContent())?.trim(), '—');
    assert.equal((await card.locator('dt:has-text("TLS ends at") + dd').textContent())?.trim(), 'relay');
    await shot(page, 'certificates');
    await axe(page, 'Certificates');
  });
});
