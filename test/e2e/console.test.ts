import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { Zone } from '../../src/dns/zone.ts';
import { buildWeb } from '../../scripts/build-web.ts';
import { launchBrowser } from '../support/browser.ts';
import { startDnsWorld, type DnsWorld } from '../support/dns-world.ts';
import { createToken, devSignIn, request, ROOT, startAgent, startRelay, type AgentHandle, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

// The web console in headless Chromium at 375 px against a real relay, agents and a test DNS
// server on loopback: sign-in and back, each page's main flow, a cross-site form post refused,
// a screenshot of each page (test-output/console/) and an axe-core check of each page in light
// and dark mode. TUNN_UPDATE_DOCS=1 also writes docs/console.png for the README.

const OUT = join(ROOT, 'test-output/console');
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

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
    mkdirSync(OUT, { recursive: true });
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

  async function shot(name: string): Promise<void> {
    await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
  }

  /** axe-core in the page: no serious or critical violation, in light and in dark mode. */
  async function axe(what: string): Promise<void> {
    for (const colorScheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme });
      // Injected over the DevTools protocol: the page's own CSP allows no inline script.
      await page.evaluate(AXE);
      const { violations, passed } = await page.evaluate(async () => {
        const r = await (globalThis as unknown as { axe: { run(c: Document, o: object): Promise<{ passes: unknown[]; violations: { id: string; impact: string; help: string; nodes: { target: string[] }[] }[] }> } }).axe.run(document, { resultTypes: ['violations'] });
        return { passed: r.passes.length, violations: r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`) };
      });
      assert.ok(passed > 10, `axe ran its rules on ${what} (${passed} passed)`);
      assert.deepEqual(violations, [], `axe on ${what} (${colorScheme})`);
      if (colorScheme === 'dark') await shot(`${what.toLowerCase()}-dark`);
    }
    await page.emulateMedia({ colorScheme: 'light' });
  }

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
    await page.fill('form[data-dev-login] input[name=email]', 'alice@example.com');
    await page.click('form[data-dev-login] button');
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
    // A second agent for another tunnel appears without a reload.
    const second = await startAgent(relay, aliceToken, origin.port, ['-n', 'second', '--public', '--no-inspect']);
    agents.push(second);
    await page.getByRole('heading', { name: 'second' }).waitFor({ timeout: 20_000 });
    await shot('tunnels');
    await axe('Tunnels');
  });

  it('Domains: refuses a name in the relay\'s zone with the API\'s message, adds one, shows its records and verifies by itself', async () => {
    await nav('Domains');
    const form = page.getByRole('form', { name: 'Add a domain' });
    await form.getByLabel('Domain').fill('x.tunn.localhost');
    await form.getByRole('button', { name: 'Add domain' }).click();
    await form.getByText("is inside the relay's own domain").waitFor();
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
    // Share with a team and take one back.
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
    const bobCtx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 375, height: 800 } });
    try {
      const bobPage = await bobCtx.newPage();
      await bobPage.goto(`${relay.url}/domains`);
      await bobPage.fill('form[data-dev-login] input[name=email]', 'bob@example.com');
      await bobPage.click('form[data-dev-login] button');
      const shared = bobPage.getByRole('listitem').filter({ has: bobPage.getByRole('heading', { name: 'shop.example.test' }) });
      await shared.getByText('shared with you by alice@example.com (read-only)').waitFor();
      assert.equal(await shared.getByRole('button').count(), 0, 'no share, verify or delete controls');
      assert.equal(await shared.getByText('DNS records to create').count(), 0);
    } finally {
      await bobCtx.close();
    }
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
    await page.fill('form[data-dev-login] input[name=email]', 'alice@example.com');
    await page.click('form[data-dev-login] button');
    await page.getByRole('heading', { level: 1, name: 'Groups' }).waitFor();
    assert.equal(await form.getByLabel('Name').inputValue(), 'later', 'bad luck loses nothing typed');
    await form.getByRole('button', { name: 'Create group' }).click();
    await page.getByRole('heading', { name: 'later' }).waitFor();
    assert.equal(await form.getByLabel('Name').inputValue(), '');
  });

  it('Certificates and Me: show what the API says (its error included), who is signed in, and sign out', async () => {
    await nav('Certificates');
    // The list, or (where the relay does not offer GET /v1/certificates yet) the API's own error:
    // never a blank page.
    const shown = page.locator('main [role=alert], main ul[aria-label=Certificates], main p:text("No certificates yet.")').first();
    await shown.waitFor();
    if ((await shown.getAttribute('role')) === 'alert') assert.match((await shown.textContent()) ?? '', /no such endpoint: GET \/v1\/certificates/);
    await shot('certificates');
    await axe('Certificates');
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
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('You are signed out of tunn.').waitFor();
    await page.goto(`${relay.url}/tokens`);
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
      await page.fill('form[data-dev-login] input[name=email]', 'alice@example.com');
      await page.click('form[data-dev-login] button');
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
