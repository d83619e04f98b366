import { getRequestListener } from '@hono/node-server';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { createApiApp } from '../../api/app.ts';
import { AgentDecisionPoint } from '../../auth/agent-decisions.ts';
import type { TunnelPolicy } from '../../auth/gate.ts';
import { createIdentity, type Identity } from '../../auth/identity.ts';
import { RateLimiter } from '../../auth/rate-limit.ts';
import { TokenService } from '../../auth/tokens.ts';
import { ManualClock, systemClock } from '../../lib/clock.ts';
import { SecretBox } from '../../lib/secret-box.ts';
import { openStore, type Store } from '../../store/store.ts';
import { launchBrowser } from '../../../test/support/browser.ts';
import { account } from '../../../test/fixtures/identity.ts';
import { parseTarget } from '../target.ts';
import { AgentGate, DECISION_TTL_MS } from './agent-gate.ts';
import { agentHttpHandler } from './agent-http.ts';
import { TlsContexts } from './contexts.ts';
import { spkiPin } from './pin.ts';
import { TlsTerminator } from './terminator.ts';
import { leaf, passthrough, testCa } from './testing.ts';

// A visitor in a real headless Chromium reaching a host whose TLS ends at the agent: the
// relay's login pages (the Hono app on loopback, dev login) and the agent (terminator, gate,
// target) on another port, the agent asking the relay's decision point in-process (phase 2
// puts the control stream there). Chromium trusts the agent's certificate by its SPKI pin
// only (--ignore-certificate-errors-spki-list), nothing else.

const HOST = 'app.tunn.localhost';

describe('agent-terminated host in Chromium: relay login, hand-off to the agent, policy at the agent', () => {
  let relay: Server;
  let target: Server;
  let browser: Browser;
  let store: Store;
  let identity: Identity;
  let relayPort: number;
  let agentPort: number;
  let policy: TunnelPolicy;
  const clock = new ManualClock(Date.now());
  let close: () => Promise<void> = async () => {};

  before(async () => {
    relay = createServer();
    relay.listen(0, '127.0.0.1');
    await once(relay, 'listening');
    relayPort = (relay.address() as AddressInfo).port;
    store = await openStore(':memory:');
    const relayUrl = `http://tunn.localhost:${relayPort}`;
    const tokens = new TokenService({ store, box: new SecretBox(randomBytes(32)), clock: systemClock, issuer: relayUrl });
    await tokens.init();
    identity = createIdentity({ store, tokens, relayUrl, dev: true, isServedHost: (h) => h === HOST });
    relay.on('request', getRequestListener(createApiApp(identity).fetch));
    const owner = await account(identity, 'owner@example.com');
    await identity.groups.create(owner.id, 'eng', ['alice@example.com']);
    policy = { tunnelId: 'app', ownerAccountId: owner.id, ownerEmail: owner.email, allow: ['group:eng'], public: false, host: HOST };
    const point = new AgentDecisionPoint({ gate: identity.gate, handoff: identity.handoff, sessions: identity.sessions, policyFor: (h) => (h === HOST ? policy : undefined) });

    target = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<h1>hello ${req.headers['tunn-user-email']}</h1><p id="cookie">${req.headers.cookie ?? ''}</p>`);
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    const gate = new AgentGate({ source: point.forAgent((h) => h === HOST), relayUrl, clock, rateLimiter: new RateLimiter({ clock }) });
    const handler = agentHttpHandler({ gate, tunnel: { tunnelId: 'app', public: false }, target: parseTarget(`127.0.0.1:${(target.address() as AddressInfo).port}`) });
    const cert = await leaf(await testCa(), [HOST]);
    const contexts = new TlsContexts();
    contexts.set(HOST, cert);
    const terminator = new TlsTerminator({ contexts, handler });
    const pt = await passthrough((s) => terminator.accept(s, s.remoteAddress ?? ''));
    agentPort = pt.port;
    browser = await launchBrowser({ extraArgs: [`--ignore-certificate-errors-spki-list=${spkiPin(cert.chainPem)}`] });
    close = async () => {
      await browser?.close();
      handler.close();
      terminator.close();
      await pt.close();
      target.close();
      relay.closeAllConnections();
      relay.close();
      await store.close();
    };
  });
  after(() => close());

  async function signIn(page: import('playwright-core').Page, email: string, path: string): Promise<void> {
    await page.goto(`https://${HOST}:${agentPort}${path}`);
    assert.equal(new URL(page.url()).host, `tunn.localhost:${relayPort}`, 'sent to the relay to sign in');
    await page.fill('form[data-dev-login] input[name=email]', email);
    await page.click('form[data-dev-login] button');
    // The per-host consent before the first hand-off holds for agent-terminated hosts too.
    await page.waitForSelector('form[action="/login/continue"]');
    assert.match(await page.textContent('h1') ?? '', new RegExp(`Continue to app\\.tunn\\.localhost:${agentPort}\\?`));
    await page.click('form[action="/login/continue"] button');
    await page.waitForURL(`https://${HOST}:${agentPort}${path}`);
  }

  it('visit → relay login → consent → back at the agent → page; the agent’s own host-only cookie; group change → 403 within 5 s', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await signIn(page, 'alice@example.com', '/dash');
    assert.equal(await page.textContent('h1'), 'hello alice@example.com');
    assert.equal(await page.textContent('#cookie'), '', 'tunn’s cookie never reaches the target');
    const c = (await ctx.cookies(`https://${HOST}:${agentPort}`)).find((x) => x.name === '__Host-tunn')!;
    assert.equal(c.domain, HOST);
    assert.equal(c.secure, true);
    assert.equal(c.httpOnly, true);
    await identity.groups.remove(policy.ownerAccountId, 'eng', ['alice@example.com']);
    clock.advance(DECISION_TTL_MS);
    const r = await page.reload();
    assert.equal(r?.status(), 403);
    assert.match(await page.textContent('body') ?? '', /alice@example\.com.*not allowed to reach/s);
    await ctx.close();
  });

  it('a stranger gets 403; a revoked session goes back to the relay login', async () => {
    await identity.groups.add(policy.ownerAccountId, 'eng', ['bob@example.com']);
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await signIn(page, 'stranger@example.com', '/');
    assert.match(await page.textContent('body') ?? '', /stranger@example\.com.*not allowed/s);
    const ctx2 = await browser.newContext();
    const p2 = await ctx2.newPage();
    await signIn(p2, 'bob@example.com', '/x');
    assert.equal(await p2.textContent('h1'), 'hello bob@example.com');
    const cookie = (await ctx2.cookies(`https://${HOST}:${agentPort}`)).find((x) => x.name === '__Host-tunn')!;
    await identity.sessions.revokeFamily((await identity.sessions.lookup(cookie.value, `${HOST}:${agentPort}`))!);
    clock.advance(DECISION_TTL_MS);
    await p2.reload();
    assert.equal(new URL(p2.url()).host, `tunn.localhost:${relayPort}`, 'back at the relay login');
    await ctx.close();
    await ctx2.close();
  });
});
