import assert from 'node:assert/strict';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import type { Browser } from 'playwright-core';
import { WebSocket } from 'ws';
import { localhostAwareLookup } from '../../src/agent/target.ts';
import { launchBrowser } from '../support/browser.ts';
import { createToken, request, startAgent, startCli, startRelay, tmpDir, type AgentHandle, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

// The visitor's path through a private tunnel, end to end: real relay and agent processes, a
// real origin, headless Chromium, the CLI. Security property under test: no path reaches a
// private tunnel's target without passing the policy.

describe('identity: only the people you name reach a tunnel', () => {
  let relay: RelayHandle;
  let origin: Origin;
  let agent: AgentHandle;
  let browser: Browser;
  let aliceToken: string;
  const cfg = tmpDir('tunn-cfg-');

  /** Runs a CLI command as alice and returns its JSON line. */
  async function cli(args: string[], token = aliceToken): Promise<Record<string, unknown>> {
    const p = startCli([...args, '--relay', relay.url, '--relay-ca', relay.caPath, '--token', token, '--json'], { env: { TUNN_CONFIG_DIR: cfg.path } });
    const code = await p.exited;
    if (code !== 0) throw new Error(`tunn ${args.join(' ')} exited ${code}: ${p.stderr.join('\n')}`);
    return p.lines[p.lines.length - 1]!;
  }

  before(async () => {
    origin = await startOrigin();
    relay = await startRelay();
    aliceToken = await createToken(relay, 'alice@example.com');
    await cli(['group', 'create', 'eng', 'bob@example.com']);
    agent = await startAgent(relay, aliceToken, origin.port, ['-n', 'grafana', '-a', 'group:eng', '-a', '@corp.example']);
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await agent?.stop();
    await relay?.stop();
    await origin?.close();
    cfg.remove();
  });

  it('takes a visitor through login to the page, 403s a stranger, follows group changes, and logs out', async () => {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await ctx.newPage();
    const appUrl = `http://grafana.tunn.localhost:${relay.httpPort}/echo`;
    await page.goto(appUrl);
    assert.equal(new URL(page.url()).host, `tunn.localhost:${relay.httpsPort}`);
    await page.fill('form[data-dev-login] input[name=email]', 'bob@example.com');
    await page.click('form[data-dev-login] button');
    // The first hand-off to grafana in this sign-in asks first (it learns bob's email).
    await page.click('form[action="/login/continue"] button');
    await page.waitForURL(appUrl);
    const seen = JSON.parse((await page.textContent('body')) ?? '{}');
    assert.equal(seen.headers['tunn-user-email'], 'bob@example.com');
    assert.equal(seen.headers.cookie, undefined, "tunn's cookie is not forwarded");
    // The assertion verifies against the relay's JWKS.
    const jwks = createLocalJWKSet(JSON.parse((await request(`http://tunn.localhost:${relay.httpPort}/.well-known/jwks.json`)).text));
    const { payload } = await jwtVerify(seen.headers['tunn-jwt-assertion'], jwks);
    assert.equal(payload.email, 'bob@example.com');

    // Removed from the group: the next request is refused, with no reconnect of the agent.
    await cli(['group', 'rm', 'eng', 'bob@example.com']);
    const denied = await page.reload();
    assert.equal(denied?.status(), 403);
    assert.match((await page.textContent('body')) ?? '', /bob@example\.com/);
    await cli(['group', 'add', 'eng', 'bob@example.com']);
    assert.equal((await page.reload())?.status(), 200);

    // Logout on the tunnel host (a GET shows the button; the form post signs out): back to login.
    await page.goto(`http://grafana.tunn.localhost:${relay.httpPort}/.tunn/logout`);
    await page.click('form[action^="/.tunn/logout"] button');
    await page.waitForSelector('text=You are signed out of tunn');
    await page.goto(appUrl);
    assert.equal(new URL(page.url()).host, `tunn.localhost:${relay.httpsPort}`);
    assert.match(page.url(), /\/login\?return=/);

    // A stranger gets a 403 page that names the email used.
    await page.fill('form[data-dev-login] input[name=email]', 'mallory@example.com');
    await page.click('form[data-dev-login] button');
    await page.click('form[action="/login/continue"] button');
    await page.waitForURL(appUrl);
    assert.match((await page.textContent('body')) ?? '', /mallory@example\.com/);
    await ctx.close();
  });

  it('refuses every entry without credentials: HTTP, HTTPS, HEAD, OPTIONS, WebSocket', async () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'POST']) {
      for (const [url, ca] of [[agent.httpUrl, undefined], [agent.url, relay.ca]] as const) {
        const r = await request(`${url}/echo`, { method, ca });
        assert.equal(r.status, 401, `${method} ${url}`);
        assert.doesNotMatch(r.text, /"method"/, 'the origin was not reached');
      }
    }
    const browserish = await request(`${agent.httpUrl}/echo`, { headers: { Accept: 'text/html' } });
    assert.equal(browserish.status, 302);
    const ws = new WebSocket(`${agent.httpUrl.replace('http:', 'ws:')}/ws`, { lookup: localhostAwareLookup as never });
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, http.IncomingMessage];
    assert.equal(res.statusCode, 401);
    ws.on('error', () => {});
    ws.terminate();
    const forged = await request(`${agent.httpUrl}/echo`, { headers: { 'Tunn-User-Email': 'bob@example.com', Cookie: 'tunn=forged' } });
    assert.equal(forged.status, 401);
  });

  it('lets scripts in with a personal access token, and not after it is revoked (same kept-alive connection)', async () => {
    const bobToken = await createToken(relay, 'bob@example.com');
    const pat = (await cli(['token', 'create', '--name', 'ci'], bobToken)) as { token: string; id: string };
    const ka = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const auth = { Authorization: `Bearer ${pat.token}` };
    const ok = await request(`${agent.httpUrl}/echo`, { headers: auth, agent: ka });
    assert.equal(ok.status, 200);
    const e = JSON.parse(ok.text);
    assert.equal(e.headers['tunn-user-email'], 'bob@example.com');
    assert.equal(e.headers.authorization, undefined, 'the tunn token is not forwarded');
    await cli(['token', 'revoke', pat.id], bobToken);
    // Two defences guard the kept-alive connection: the gate refuses the next request on it (401),
    // and the live-revocation sweep (every 2 s) cuts it. Which one acts first is a race, so the
    // request may meet either; what must never happen is a 200. Once cut, a new connection is refused too.
    const after = await request(`${agent.httpUrl}/echo`, { headers: auth, agent: ka }).catch((err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'ECONNRESET', `the kept-alive connection was refused or cut, not failed otherwise: ${err.message}`);
      return undefined;
    });
    if (after) assert.equal(after.status, 401, 'a revoked token is refused on the connection it was let in on');
    else assert.equal((await request(`${agent.httpUrl}/echo`, { headers: auth })).status, 401, 'cut by the sweep, and refused on a new connection');
    ka.destroy();
    const strangerToken = await createToken(relay, 'eve@example.com');
    assert.equal((await request(`${agent.httpUrl}/echo`, { headers: { Authorization: `Bearer ${strangerToken}` } })).status, 403);
    const corp = await createToken(relay, 'carol@corp.example');
    assert.equal((await request(`${agent.httpUrl}/echo`, { headers: { Authorization: `Bearer ${corp}` } })).status, 200);
    assert.equal((await request(`${agent.httpUrl}/echo`, { headers: { Authorization: 'Bearer not.a.jwt' } })).status, 401);
    const events = (await cli(['events'])) as { events: { kind: string }[] };
    assert.ok(events.events.length > 0, 'security events were recorded');
  });

  it('refuses to start an agent with an unknown group, a malformed email or CIDR, naming it', async () => {
    for (const [args, msg] of [
      [['-a', 'group:nope'], /unknown group "group:nope"/],
      [['-a', 'not-an-email'], /not-an-email/],
      [['--allow-ip', '10.0.0.300/8'], /10\.0\.0\.300\/8/],
      [['--basic-auth', 'nocolon'], /nocolon|user:pass/],
    ] as const) {
      const p = startCli([String(origin.port), '--relay', relay.url, '--relay-ca', relay.caPath, '--token', aliceToken, ...args]);
      assert.equal(await p.exited, 1, args.join(' '));
      assert.match(p.stderr.join('\n'), msg);
    }
  });

  it('applies basic auth and IP allow-lists at the edge', async () => {
    const gated = await startAgent(relay, aliceToken, origin.port, ['-n', 'gated', '--public', '--basic-auth', 'u:secret', '--quiet']);
    const closed = await startAgent(relay, aliceToken, origin.port, ['-n', 'closed', '--public', '--allow-ip', '10.0.0.0/8', '--quiet']);
    try {
      assert.equal((await request(`${gated.httpUrl}/echo`)).status, 401);
      const okr = await request(`${gated.httpUrl}/echo`, { headers: { Authorization: `Basic ${Buffer.from('u:secret').toString('base64')}` } });
      assert.equal(okr.status, 200);
      assert.equal((await request(`${closed.httpUrl}/echo`)).status, 403);
    } finally {
      await gated.stop();
      await closed.stop();
    }
  });

  it('signs the CLI in with a device code, saves credentials 0600, and signs out', async () => {
    const home = tmpDir('tunn-login-');
    try {
      const login = startCli(['login', '--relay', relay.url, '--relay-ca', relay.caPath, '--json', '--no-browser'], { env: { TUNN_CONFIG_DIR: home.path } });
      const started = await login.waitFor((l) => l.event === 'login');
      assert.match(String(started.userCode), /\S/);
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await ctx.newPage();
      assert.equal(started.verificationUriComplete, undefined, 'no link carries the code (device-code phishing)');
      await page.goto(String(started.verificationUri));
      await page.fill('form[data-dev-login] input[name=email]', 'dana@example.com');
      await page.click('form[data-dev-login] button');
      // As a person does: type the code the terminal shows, check what asked, approve.
      await page.fill('input[name=user_code]', String(started.userCode));
      await page.click('button[value=check]');
      await page.waitForSelector('button[value=approve]');
      const body = (await page.textContent('body')) ?? '';
      assert.match(body, new RegExp(String(started.userCode)));
      assert.match(body, /calls itself .*tunn CLI on .*its own words.*full access to your tunn account, dana@example\.com/s);
      await page.click('button[value=approve]');
      const ready = await login.waitFor((l) => l.event === 'ready');
      assert.equal(ready.email, 'dana@example.com');
      assert.equal(await login.exited, 0);
      await ctx.close();
      assert.equal(statSync(join(home.path, 'credentials.json')).mode & 0o777, 0o600);
      const env = { TUNN_CONFIG_DIR: home.path };
      const who = startCli(['whoami', '--json'], { env });
      assert.equal(await who.exited, 0);
      assert.equal(who.lines[0]!.email, 'dana@example.com');
      const out = startCli(['logout', '--json'], { env });
      assert.equal(await out.exited, 0);
      const again = startCli(['whoami', '--relay', relay.url, '--relay-ca', relay.caPath], { env });
      assert.equal(await again.exited, 1);
      assert.match(again.stderr.join('\n'), /not signed in|tunn login/);
    } finally {
      home.remove();
    }
  });
});
