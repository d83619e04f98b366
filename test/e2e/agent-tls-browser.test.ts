import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { leaf, testCa } from '../../src/agent/tls/testing.ts';
import { spkiPin } from '../../src/agent/tls/pin.ts';
import { launchBrowser } from '../support/browser.ts';
import { startOrigin, type Origin } from './origin.ts';
import { createToken, startAgent, startCli, startRelay, tmpDir, type AgentHandle, type RelayHandle } from './harness.ts';

// A visitor in a real Chromium reaching a host whose TLS ends at the agent, with real relay and
// agent processes: the relay's login, the hand-off back to the agent, the page; policy enforced
// at the agent with the relay as decision point (answers cached ≤ 5 s). Chromium trusts the
// agent's and the relay's certificates by their SPKI pins only.

const OWNER = 'owner@browser.test';
/** Generous ceiling for "a change bites within 5 s" on a loaded machine (the cache itself is 5 s). */
const CEILING_MS = 15_000;

describe('e2e Chromium: agent-terminated host, relay login, policy at the agent', () => {
  const dir = tmpDir('tunn-e2e-agent-browser-');
  let relay: RelayHandle;
  let origin: Origin;
  let token: string;
  let agent: AgentHandle;
  let browser: Browser;
  let host: string;

  const cli = async (...args: string[]): Promise<void> => {
    const p = startCli([...args, '--relay', relay.url, '--relay-ca', relay.caPath, '--json'], { env: { TUNN_TOKEN: token } });
    assert.equal(await p.exited, 0, p.stderr.join('\n'));
  };

  before(async () => {
    relay = await startRelay();
    origin = await startOrigin();
    token = await createToken(relay, OWNER);
    await cli('group', 'create', 'eng', 'alice@browser.test', 'bob@browser.test');
    host = `secure.${relay.domain}`;
    const cert = await leaf(await testCa(), [host]);
    writeFileSync(join(dir.path, 'c.pem'), cert.chainPem);
    writeFileSync(join(dir.path, 'k.pem'), cert.keyPem);
    agent = await startAgent(relay, token, origin.port, ['-n', 'secure', '-a', 'group:eng', '--terminate-at', 'agent', '--tls-cert', join(dir.path, 'c.pem'), '--tls-key', join(dir.path, 'k.pem'), '--no-inspect']);
    await agent.proc.waitFor((l) => l.event === 'tls' && l.terminatedAt === 'agent');
    await relay.proc.waitFor((l) => l.msg === 'TLS now ends at the agent' && l.host === host);
    // The relay's own certificate (dev CA), pinned like the agent's.
    const s = tlsConnect({ host: '127.0.0.1', port: relay.httpsPort, servername: relay.domain, rejectUnauthorized: false });
    await once(s, 'secureConnect');
    const relayPin = spkiPin(s.getPeerX509Certificate()!.toString());
    s.destroy();
    browser = await launchBrowser({ extraArgs: [`--ignore-certificate-errors-spki-list=${spkiPin(cert.chainPem)},${relayPin}`] });
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await relay?.stop();
    await origin?.close();
    dir.remove();
  });

  const appUrl = (path: string) => `https://${host}:${relay.httpsPort}${path}`;

  async function signIn(page: Page, email: string, path: string): Promise<void> {
    await page.goto(appUrl(path));
    assert.equal(new URL(page.url()).host, `${relay.domain}:${relay.httpsPort}`, 'sent to the relay to sign in');
    await page.fill('form[data-dev-login] input[name=email]', email);
    await page.click('form[data-dev-login] button');
    await page.waitForSelector('form[action="/login/continue"]');
    await page.click('form[action="/login/continue"] button');
    await page.waitForURL(appUrl(path));
  }

  /** Reloads until `done` holds; returns how long it took (fails past the ceiling). */
  async function reloadUntil(page: Page, done: (status: number | undefined) => boolean): Promise<number> {
    const start = Date.now();
    for (;;) {
      const r = await page.reload();
      if (done(r?.status())) return Date.now() - start;
      assert.ok(Date.now() - start < CEILING_MS, `no change within ${CEILING_MS} ms`);
      await new Promise((res) => setTimeout(res, 250));
    }
  }

  // Security property: identity is enforced for an agent-terminated host; a group change bites within the 5 s cache.
  it('visit → relay login → back → page; group change → 403 within the cache time', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await signIn(page, 'alice@browser.test', '/dash');
    const echoed = JSON.parse((await page.textContent('body')) ?? '{}') as { url: string; headers: Record<string, string> };
    assert.equal(echoed.url, '/dash');
    assert.equal(echoed.headers['tunn-user-email'], 'alice@browser.test');
    assert.equal(echoed.headers.cookie, undefined, 'tunn’s cookie never reaches the target');
    await cli('group', 'rm', 'eng', 'alice@browser.test');
    const took = await reloadUntil(page, (s) => s === 403);
    assert.match((await page.textContent('body')) ?? '', /alice@browser\.test.*not allowed/s);
    assert.ok(took <= CEILING_MS, `403 after ${took} ms`);
    await ctx.close();
  });

  it('not allowed → 403; a revoked session (signed out at the relay) → back to the relay login', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await signIn(page, 'stranger@browser.test', '/');
    assert.match((await page.textContent('body')) ?? '', /stranger@browser\.test.*not allowed/s);
    await ctx.close();
    const ctx2 = await browser.newContext();
    const p2 = await ctx2.newPage();
    await signIn(p2, 'bob@browser.test', '/x');
    assert.match((await p2.textContent('body')) ?? '', /bob@browser\.test/);
    // Sign out at the relay: the whole session family goes, the agent's host session included.
    await p2.goto(`${relay.url}/logout`);
    await p2.click('form[action="/logout"] button');
    // The relay's live-revocation sweep cuts the connections that carried the revoked session; a
    // navigation that meets the cut fails with a network error (never the page), and the next one
    // goes out on a new connection.
    // (A failed navigation leaves the page where it was, at the relay: only an answered one counts.)
    const visit = async (): Promise<boolean> =>
      p2.goto(appUrl('/x')).then(
        () => true,
        (err: Error) => (assert.match(err.message, /net::ERR_(EMPTY_RESPONSE|CONNECTION_(RESET|CLOSED))/, 'only a cut connection'), false),
      );
    let answered = await visit();
    const start = Date.now();
    while (!answered || new URL(p2.url()).host !== `${relay.domain}:${relay.httpsPort}`) {
      assert.ok(Date.now() - start < CEILING_MS, 'still served after the session was revoked');
      await new Promise((res) => setTimeout(res, 250));
      answered = await visit();
    }
    assert.match(new URL(p2.url()).pathname, /^\/login/);
    await ctx2.close();
  });
});
