import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { Zone } from '../../src/dns/zone.ts';
import { buildWeb } from '../../scripts/build-web.ts';
import { launchBrowser } from '../support/browser.ts';
import { startDnsWorld, type DnsWorld } from '../support/dns-world.ts';
import { createToken, devSignIn, request, ROOT, startAgent, startRelay, type AgentHandle, type RelayHandle } from './harness.ts';
import { asUser, axe as axeCheck, CONSOLE_OUT, devLogin, holdRequests, shot as shotInto } from './console-browser.ts';
import { startOrigin, type Origin } from './origin.ts';

// The web console in headless Chromium at 375 px against a real relay, agents and a test DNS
// server on loopback: sign-in and back, each page's main flow, a cross-site form post refused,
// a screenshot of each page (test-output/console/) and an axe-core check of each page in light
// and dark mode. TUNN_UPDATE_DOCS=1 also writes docs/console.png for the README.

describe('web console', { timeout: 240_000 }, () => {
  let relay: RelayHandle;
  let origin: Origin;
  let dns: DnsWorld;
  let customer: Zone;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  let aliceToken: string;
  const agents: AgentHandle[] = [];
  const cspViolations: string[] = [];

  before(async () => {
    await buildWeb({ quiet: true });
    mkdirSync(CONSOLE_OUT, { recursive: true });
    customer = new Zone('example.test');
    dns = await startDnsWorld({ relayDomain: 'tunn.localhost', publicIps: ['127.0.0.1'], customerZones: [customer] });
    origin = await startOrigin();
    relay = await startRelay({ extra: ['--dns-resolver', dns.resolver, '--admin-email', 'alice@example.com'] });
    aliceToken = await createToken(relay, 'alice@example.com');
    browser = await launchBrowser();
    ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 375, height: 800 }, colorScheme: 'light' });
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: relay.url });
    page = await ctx.newPage();
    page.on('console', (m) => {
      if (/Content[- ]Security[- ]Policy/i.test(m.text())) cspViolations.push(m.text());
    });
  });
  after(async () => {
    await browser?.close();
    for (const a of agents) await a.stop();
    await relay?.stop();
    await origin?.close();
    await dns?.close();
  });

  const shot = (name: string) => shotInto(page, name);
  const axe = (what: string) => axeCheck(page, what);

  async function open(path: string, title: string): Promise<void> {
    await page.goto(`${relay.url}${path}`);
    await page.getByRole('heading', { level: 1, name: title }).waitFor();
  }

  /** Follows the nav link (as a user would) and waits for the page's title. */
  async function nav(title: string): Promise<void> {
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: title, exact: true }).click();
    await page.getByRole('heading', { level: 1, name: title }).waitFor();
  }

  it('sends a signed-out visitor to sign in and back to the page they asked for', async () => {
    await page.goto(`${relay.url}/groups?x=1`);
    await page.waitForURL((u) => u.pathname === '/login');
    assert.equal(new URL(page.url()).searchParams.get('return'), '/groups?x=1');
    await devLogin(page, 'alice@example.com');
    await page.waitForURL((u) => u.pathname === '/groups');
    assert.equal(new URL(page.url()).search, '?x=1');
    await page.getByRole('heading', { level: 1, name: 'Groups' }).waitFor();
    // Keyboard: the first Tab reaches the skip link, which leads to the page's content.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');
  });

  it('Groups: validates as typed with the API\'s messages, creates a group, and a live tunnel\'s access follows its members', async () => {
    await open('/groups', 'Groups');
    const form = page.getByRole('form', { name: 'New group' });
    await form.getByLabel('Name').fill('Eng!');
    await form.getByText('is not a valid group name').waitFor();
    assert.equal(await form.getByRole('button', { name: 'Create group' }).isDisabled(), true);
    await form.getByLabel('Name').fill('eng');
    await form.getByLabel('Members (optional)').fill('carol@example.com, bob@example');
    await form.getByText('not valid email address: "bob@example"').waitFor();
    await form.getByLabel('Members (optional)').fill('carol@example.com');
    await form.getByRole('button', { name: 'Create group' }).click();
    const card = page.getByRole('list', { name: 'Your groups' }).getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'eng' }) });
    await card.getByText('carol@example.com').waitFor();
    // A name in use: the API's own message, before sending.
    await form.getByLabel('Name').fill('eng');
    await form.getByText('the group "eng" already exists').waitFor();
    await form.getByLabel('Name').fill('');

    // A tunnel for group:eng; bob is not in it yet.
    const agent = await startAgent(relay, aliceToken, origin.port, ['-n', 'grafana', '-a', 'group:eng', '--no-inspect']);
    agents.push(agent);
    const bob = await devSignIn(relay, 'bob@example.com', `${agent.httpUrl}/echo`);
    const asBob = () => request(`${agent.httpUrl}/echo`, { headers: { cookie: bob.hostCookie } });
    assert.equal((await asBob()).status, 403);
    await card.getByLabel('Add to eng').fill('bob@example.com');
    await card.getByRole('button', { name: 'Add' }).click();
    await card.getByText('bob@example.com').waitFor();
    assert.equal((await asBob()).status, 200, 'bob gets in at once');
    await card.getByRole('button', { name: 'Remove bob@example.com from eng' }).click();
    await card.getByText('bob@example.com').waitFor({ state: 'detached' });
    assert.equal((await asBob()).status, 403, 'and is out at once');

    // Delete asks first (Cancel keeps the group; Escape too).
    const temp = page.getByRole('form', { name: 'New group' });
    await temp.getByLabel('Name').fill('temp');
    await temp.getByRole('button', { name: 'Create group' }).click();
    const tempCard = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'temp' }) });
    await tempCard.getByRole('button', { name: 'Delete group temp' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('Delete the group temp?').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Cancel', 'focus starts on the safe choice');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    await tempCard.getByRole('button', { name: 'Delete group temp' }).click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await tempCard.waitFor({ state: 'detached' });
    await shot('groups');
    await axe('Groups');
  });

  it('Tunnels: lists the live tunnel with its URL, allow-list (group members on focus) and agents', async () => {
    await nav('Tunnels');
    const card = page.getByRole('list', { name: 'Live tunnels' }).getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'grafana' }) }).first();
    await card.waitFor();
    await card.getByRole('link', { name: /^https?:\/\/grafana\.tunn\.localhost/ }).first().waitFor();
    assert.equal(await card.getByTestId('agents').textContent(), '1');
    const tag = card.getByRole('button', { name: 'group:eng' });
    await tag.focus();
    const members = card.getByRole('tooltip');
    await members.waitFor({ state: 'visible' });
    assert.equal(await members.textContent(), 'carol@example.com');
    assert.equal(await tag.getAttribute('aria-describedby'), await members.getAttribute('id'));
    await card.getByRole('button', { name: /^Copy the URL of grafana/ }).click();
    assert.match(await page.evaluate(() => navigator.clipboard.readText()), /^https?:\/\/grafana\.tunn\.localhost:\d+$/);
    // A second agent appears through the live stream (GET /v1/tunnels/events), not a poll: the
    // page is loaded afresh so its 60 s safety poll cannot fire before the card must be there,
    // and the browser's own record of the stream (DevTools protocol) holds the `up` naming it.
    const cdp = await ctx.newCDPSession(page);
    const streamed: { eventName: string; data: string }[] = [];
    cdp.on('Network.eventSourceMessageReceived', (e) => streamed.push(e));
    await cdp.send('Network.enable');
    await open('/', 'Tunnels');
    const loadedAt = Date.now();
    await page.getByText('Live: changes appear as agents come and go.').waitFor();
    const second = await startAgent(relay, aliceToken, origin.port, ['-n', 'second', '--public', '--no-inspect']);
    agents.push(second);
    await page.getByRole('heading', { name: 'second' }).waitFor({ timeout: 45_000 });
    assert.ok(Date.now() - loadedAt < 60_000, 'shown before the safety poll could have run');
    assert.equal(streamed[0]?.eventName, 'snapshot');
    assert.ok(streamed.some((e) => e.eventName === 'up' && (JSON.parse(e.data) as { tunnel: { host: string } }).tunnel.host === second.host), JSON.stringify(streamed.map((e) => e.eventName)));
    await cdp.detach();
    await shot('tunnels');
    await axe('Tunnels');
  });

  it('Domains: validates as typed with the API\'s messages, adds one, shows its records and verifies by itself', async () => {
    // Bob claims a domain first (his records are not in DNS: an unverified claim).
    const bobToken = await createToken(relay, 'bob@example.com');
    const claim = await request(`${relay.url}/v1/domains`, { method: 'POST', ca: relay.ca, headers: { authorization: `Bearer ${bobToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ domain: 'taken.example.test', verify: false }) });
    assert.equal(claim.status, 201, claim.text);
    await nav('Domains');
    const form = page.getByRole('form', { name: 'Add a domain' });
    // The API's refusals (POST /v1/domains/validate) appear as typed, before anything is sent.
    // A bad name blocks the button; another's claim does not (creating the records changes it).
    for (const [typed, says, blocked] of [
      ['x.tunn.localhost', "x.tunn.localhost is inside the relay's own domain tunn.localhost", true],
      ['shop_1.example.test', '"shop_1.example.test" is not a valid domain name', true],
      ['taken.example.test', 'taken.example.test is waiting for DNS verification by another account', false],
    ] as const) {
      await form.getByLabel('Domain').fill(typed);
      await form.getByText(says).waitFor();
      assert.equal(await form.getByRole('button', { name: 'Add domain' }).isDisabled(), blocked, typed);
    }
    await shot('domains-invalid');
    await form.getByLabel('Domain').fill('shop.example.test');
    await form.getByRole('button', { name: 'Add domain' }).click();
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'shop.example.test' }) });
    await card.getByText('Waiting for DNS verification').waitFor();
    // The records as a user would copy them into their DNS.
    const acme = card.getByRole('button', { name: /^Copy the value of the CNAME record _acme-challenge\.shop\.example\.test/ });
    await acme.click();
    const acmeTarget = await page.evaluate(() => navigator.clipboard.readText());
    assert.match(acmeTarget, /^[a-z0-9]+\._acme\.tunn\.localhost$/);
    await card.getByRole('button', { name: /^Copy the value of the CNAME record \*\.shop\.example\.test/ }).click();
    const wildTarget = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(wildTarget, 'tunn.localhost');
    // Share: a bad entry is refused as typed; then a team, taken back.
    await card.getByLabel('Share shop.example.test with').fill('carol@example.com, bob@');
    await card.getByText('"bob@" is neither an email (alice@company.com) nor an email domain (@company.com)').waitFor();
    assert.equal(await card.getByRole('button', { name: 'Share', exact: true }).isDisabled(), true);
    await card.getByLabel('Share shop.example.test with').fill('@corp.example');
    await card.getByRole('button', { name: 'Share', exact: true }).click();
    await card.getByRole('button', { name: 'Stop sharing shop.example.test with @corp.example' }).click();
    await card.getByRole('button', { name: 'Stop sharing shop.example.test with @corp.example' }).waitFor({ state: 'detached' });
    await shot('domains-pending');
    // DNS now holds the records: the card turns verified by itself.
    customer.add({ name: '*.shop.example.test', type: 'CNAME', value: wildTarget });
    customer.add({ name: '_acme-challenge.shop.example.test', type: 'CNAME', value: acmeTarget });
    await card.getByText('Verified', { exact: true }).waitFor({ timeout: 30_000 });
    await shot('domains');
    await axe('Domains');

    // Shared with bob: he sees it read-only (and the API refuses him changes whatever a page shows).
    await card.getByLabel('Share shop.example.test with').fill('bob@example.com');
    await card.getByRole('button', { name: 'Share', exact: true }).click();
    await card.getByRole('button', { name: 'Stop sharing shop.example.test with bob@example.com' }).waitFor();
    await asUser(browser, `${relay.url}/domains`, 'bob@example.com', async (bobPage) => {
      const shared = bobPage.getByRole('listitem').filter({ has: bobPage.getByRole('heading', { name: 'shop.example.test' }) });
      await shared.getByText('shared with you by alice@example.com (read-only)').waitFor();
      assert.equal(await shared.getByRole('button').count(), 0, 'no share, verify or delete controls');
      assert.equal(await shared.getByText('DNS records to create').count(), 0);
    });
  });

  it('Tokens: creates a token shown once, shows its last use, revokes it, and the agent using it is refused', async () => {
    await nav('Tokens');
    await page.getByRole('form', { name: 'New personal access token' }).getByLabel('Name').fill('laptop');
    await page.getByRole('button', { name: 'Create token' }).click();
    const token = (await page.getByTestId('new-token').textContent())!;
    assert.match(token, /^ey[\w-]+\.[\w-]+\.[\w-]+$/);
    const agent = await startAgent(relay, token, origin.port, ['-n', 'via-console-token', '--public', '--no-inspect']);
    agents.push(agent);
    assert.equal((await request(`${relay.url}/v1/me`, { ca: relay.ca, headers: { authorization: `Bearer ${token}` } })).status, 200);
    await page.getByRole('button', { name: 'Done, hide it' }).click();
    assert.equal(await page.getByTestId('new-token').count(), 0, 'the secret is gone from the page');
    await page.reload();
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'laptop' }) });
    await card.waitFor();
    assert.notEqual((await card.locator('dt:has-text("Last used") + dd').textContent())?.trim(), 'never');
    await shot('tokens');
    await axe('Tokens');
    await card.getByRole('button', { name: 'Revoke token laptop' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    await card.waitFor({ state: 'detached' });
    const fatal = await agent.proc.waitFor((l) => l.event === 'fatal', 15_000);
    assert.equal(fatal.code, 'AUTH_TOKEN_REVOKED');
    const refused = await request(`${relay.url}/v1/me`, { ca: relay.ca, headers: { authorization: `Bearer ${token}` } });
    assert.equal(refused.status, 401);

    // A relay operator (alice: --admin-email) may list every account's tokens (the API's ?all=1),
    // each with its account; another account's token is not revocable here.
    // (security) Switching the scope never shows one scope's answer under the other's label: each
    // switch's GET /v1/tokens is held (a real request to the relay, answered only when the test
    // lets it go) while the page is read, so a list rendered from the previous answer is caught.
    const held = holdRequests(page, (u) => u.pathname === '/v1/tokens');
    const everyone = page.getByLabel('Every account (relay operator)');
    await everyone.check();
    let release = await held.next();
    assert.equal(release.url.searchParams.get('all'), '1');
    // (The request is sent by the effect after the switch's render: the page is read after that render.)
    assert.equal(await page.getByRole('list', { name: "Every account's tokens" }).count(), 0, 'your own tokens are not listed as "every account" while that loads');
    assert.equal(await page.getByRole('list', { name: 'Your tokens' }).count(), 0, 'the previous list is gone while every account\'s loads');
    await page.getByRole('status').getByText('Loading tokens…').waitFor({ timeout: 5_000 });
    release.go();
    const bobs = page.getByRole('list', { name: "Every account's tokens" }).getByRole('listitem').filter({ hasText: 'bob@example.com' }).first();
    await bobs.waitFor();
    // The first render of every account's tokens is the one read: no Revoke on bob's.
    assert.equal(await bobs.getByRole('button', { name: /^Revoke/ }).count(), 0, "another account's token is not revocable here");
    await shot('tokens-all');
    await axe('Tokens-all');
    await everyone.uncheck();
    release = await held.next();
    assert.equal(release.url.searchParams.get('all'), null);
    assert.equal(await page.getByText('bob@example.com').count(), 0, 'every account\'s tokens are not listed as "your tokens" while those load');
    await page.getByRole('status').getByText('Loading tokens…').waitFor({ timeout: 5_000 });
    release.go();
    const mine = page.getByRole('list', { name: 'Your tokens' });
    await mine.waitFor();
    assert.equal(await mine.getByText('bob@example.com').count(), 0, 'your tokens hold no other account\'s token');
    await held.stop();
    // (security) Bob is no operator: no such toggle, and the API refuses him ?all=1 whatever a page shows.
    await asUser(browser, `${relay.url}/tokens`, 'bob@example.com', async (bobPage) => {
      await bobPage.getByRole('list', { name: 'Your tokens' }).waitFor();
      assert.equal(await bobPage.getByLabel('Every account (relay operator)').count(), 0);
      const all = await bobPage.evaluate(async () => {
        const r = await fetch('/v1/tokens?all=1');
        return { status: r.status, body: (await r.json()) as { error?: { message: string }; tokens?: unknown } };
      });
      assert.equal(all.status, 403);
      assert.match(all.body.error?.message ?? '', /only the relay's operators \(--admin-email\) can list every account's tokens/);
    });
  });

  it('Events: filters by kind and email (kept in the address), validating the email as typed', async () => {
    await nav('Events');
    const filters = page.getByRole('form', { name: 'Filter events' });
    await filters.getByLabel('Email').fill('bob@');
    await filters.getByText('is not a valid email address').waitFor();
    assert.equal(await filters.getByRole('button', { name: 'Filter' }).isDisabled(), true);
    await filters.getByLabel('Email').fill('bob@example.com');
    await filters.getByLabel('Kind').selectOption('visitor_denied');
    await filters.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL((u) => u.searchParams.get('kind') === 'visitor_denied');
    const list = page.getByRole('list', { name: 'Events, newest first' });
    await list.getByText('visitor_denied').first().waitFor();
    for (const text of await list.getByRole('listitem').allTextContents()) {
      assert.match(text, /visitor_denied/);
      assert.match(text, /bob@example\.com/);
    }
    await filters.getByLabel('Kind').selectOption('token_revoked_used');
    await filters.getByLabel('Email').fill('');
    await filters.getByRole('button', { name: 'Filter' }).click();
    await list.getByText('token_revoked_used').first().waitFor();
    await page.reload();
    assert.equal(await page.getByRole('form', { name: 'Filter events' }).getByLabel('Kind').inputValue(), 'token_revoked_used', 'the filter survives a reload');
    // An operator (--admin-email) may see every account's: a garbage token belongs to nobody.
    assert.equal((await request(`${relay.url}/v1/me`, { ca: relay.ca, headers: { authorization: 'Bearer not-a-token' } })).status, 401);
    await filters.getByLabel('Kind').selectOption('token_invalid');
    await filters.getByRole('button', { name: 'Filter' }).click();
    await page.getByText('No events match these filters.').waitFor();
    await filters.getByLabel('Every account (relay operator)').check();
    await filters.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL((u) => u.searchParams.get('all') === '1');
    await list.getByText('API GET /v1/me').first().waitFor();
    await shot('events');
    await axe('Events');
  });

  it('an expired sign-in mid-use goes to sign in and back to the same page, with what was typed still there', async () => {
    await nav('Groups');
    const form = page.getByRole('form', { name: 'New group' });
    await form.getByLabel('Name').fill('later');
    // Signed out in another tab of this browser: this page's session is gone.
    const other = await ctx.newPage();
    await other.goto(`${relay.url}/logout`);
    await other.getByRole('button', { name: 'Sign out' }).click();
    await other.getByText('You are signed out of tunn.').waitFor();
    await other.close();
    await form.getByRole('button', { name: 'Create group' }).click();
    await page.waitForURL((u) => u.pathname === '/login' && u.searchParams.get('return') === '/groups');
    await devLogin(page, 'alice@example.com');
    await page.getByRole('heading', { level: 1, name: 'Groups' }).waitFor();
    assert.equal(await form.getByLabel('Name').inputValue(), 'later', 'bad luck loses nothing typed');
    await form.getByRole('button', { name: 'Create group' }).click();
    await page.getByRole('heading', { name: 'later' }).waitFor();
    assert.equal(await form.getByLabel('Name').inputValue(), '');
  });

  it('Certificates and Me: lists the domain\'s certificate, who is signed in; sign out through the API, and the next call goes to sign in', async () => {
    await nav('Certificates');
    // (Issuance by a real CA as the page watches, its screenshots and axe: console-certificates.test.ts.)
    await page.getByRole('list', { name: 'Certificates' }).getByRole('heading', { name: '*.shop.example.test' }).waitFor();
    await nav('Me');
    assert.equal(await page.getByTestId('me-email').textContent(), 'alice@example.com');
    await page.getByText(relay.url).first().waitFor();
    await shot('me');
    await axe('Me');
    if (process.env.TUNN_UPDATE_DOCS === '1') {
      // The README's picture: the Tunnels page, wider, from this very run.
      await page.setViewportSize({ width: 1000, height: 560 });
      await open('/', 'Tunnels');
      await page.getByRole('heading', { name: 'grafana' }).waitFor();
      await page.getByRole('heading', { name: 'second' }).waitFor();
      await page.screenshot({ path: join(ROOT, 'docs/console.png') });
      await page.setViewportSize({ width: 375, height: 800 });
      await open('/me', 'Me');
    }
    // Sign-out through the API (DELETE /v1/session); the console's next call finds no session
    // and sends the browser to sign in, and back to where it was going.
    const cookie = (await ctx.cookies(relay.url)).map((c) => `${c.name}=${c.value}`).join('; ');
    const sessionWith = (cookie: string) => request(`${relay.url}/v1/session`, { ca: relay.ca, headers: { cookie } });
    assert.equal((await sessionWith(cookie)).status, 200);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('You are signed out of tunn (alice@example.com).').waitFor();
    // (security) the session is ended on the relay, not only forgotten by this browser.
    assert.equal((await sessionWith(cookie)).status, 401);
    await shot('signed-out');
    await axe('Signed-out');
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Tokens', exact: true }).click();
    await page.waitForURL((u) => u.pathname === '/login' && u.searchParams.get('return') === '/tokens');
    assert.deepEqual(cspViolations, [], 'the console runs under its CSP without a violation');
  });

  // Guards CSRF: a tunnel's page (another origin under the relay's zone) posts a form to /v1
  // while the visitor is signed in to the console, and nothing changes. Chromium counts each
  // *.localhost host as its own site, so here SameSite=Lax keeps the cookie off the post; where
  // the tunnel is same-site with the relay (a real zone such as tunn.example.com) the cookie goes
  // along and the API's Origin/Sec-Fetch-Site check refuses it (src/api/console-access.test.ts).
  it('refuses a cross-site form posted to /v1 from a tunnel\'s page', async () => {
    const attack = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><title>win a prize</title><form method="post" action="${relay.url}/v1/groups" enctype="text/plain"><input name='{"name":"pwned","x":"' value='"}'><button>Go</button></form>`);
    });
    attack.listen(0, '127.0.0.1');
    await once(attack, 'listening');
    try {
      const evil = await startAgent(relay, aliceToken, (attack.address() as AddressInfo).port, ['-n', 'prize', '--public', '--no-inspect']);
      agents.push(evil);
      await page.goto(`${relay.url}/login`);
      await devLogin(page, 'alice@example.com');
      await page.getByText('You are signed in to tunn as').waitFor();
      // The attacker's page over HTTPS under the relay's zone: same site as the relay.
      await page.goto(evil.urls.find((u) => u.startsWith('https:'))!);
      await page.click('button');
      await page.waitForURL((u) => u.pathname === '/v1/groups');
      const body = JSON.parse((await page.textContent('body')) ?? '{}') as { error?: { code: string } };
      assert.ok(body.error && ['AUTH_REQUIRED', 'FORBIDDEN'].includes(body.error.code), JSON.stringify(body));
      await open('/groups', 'Groups');
      await page.getByRole('heading', { name: 'eng' }).waitFor();
      assert.equal(await page.getByRole('heading', { name: 'pwned' }).count(), 0, 'nothing was created');
    } finally {
      attack.close();
    }
  });
});
