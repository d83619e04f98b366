import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createCa, issueLeaf } from '../../src/certs/dev-ca.ts';
import { launchBrowser } from '../support/browser.ts';
import { startOidcProvider, type TestOp } from '../support/oidc.ts';
import { startSmtpSink, type SmtpSink } from '../support/smtp.ts';
import { createToken, request, startAgent, startCli, startRelay, tmpDir, until, type AgentHandle, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

// The sign-in methods a relay operator enables with flags, end to end through the real relay
// process: a real OpenID provider (oidc-provider), a real SMTP sink (smtp-server), headless
// Chromium. Also: login state across a relay restart, rate limits and security events, the
// dev login refused without --dev, and clear errors for bad identity flags.

const OWNER = 'olga@example.com';

describe('identity providers configured by relay flags', () => {
  let origin: Origin;
  let op: TestOp;
  let smtp: SmtpSink;
  let relay: RelayHandle;
  let ownerToken: string;
  let agent: AgentHandle;
  let browser: Browser;
  let aliceCtx: BrowserContext | undefined;
  let alicePage: Page;
  const cfg = tmpDir('tunn-cfg-');

  const relayFlags = (): string[] => [
    '--oidc-issuer', op.issuer, '--oidc-client-id', op.clientId, '--oidc-client-secret', op.clientSecret, '--oidc-name', 'Corp SSO',
    '--smtp-url', smtp.url, '--mail-from', 'tunn <login@tunn.localhost>',
  ];
  const appUrl = (): string => `http://wiki.tunn.localhost:${relay.httpPort}/echo`;

  /** Runs a CLI command against the relay and returns its last JSON line. */
  async function cli(args: string[], token = ownerToken): Promise<Record<string, unknown>> {
    const p = startCli([...args, '--relay', relay.url, '--relay-ca', relay.caPath, '--token', token, '--json'], { env: { TUNN_CONFIG_DIR: cfg.path } });
    const code = await p.exited;
    if (code !== 0) throw new Error(`tunn ${args.join(' ')} exited ${code}: ${p.stderr.join('\n')}`);
    return p.lines[p.lines.length - 1]!;
  }

  /** A call to the relay's API with a bearer token. */
  function api(method: string, path: string, token: string, body?: string): ReturnType<typeof request> {
    return request(`${relay.url}${path}`, { method, ca: relay.ca, body, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) } });
  }

  async function bodyJson(page: Page): Promise<{ headers: Record<string, string> }> {
    return JSON.parse((await page.textContent('body')) ?? '{}') as { headers: Record<string, string> };
  }

  before(async () => {
    origin = await startOrigin();
    smtp = await startSmtpSink();
    // The OP registers the relay's callback when it handles its first request (the relay's
    // port is known only once it runs, and the relay needs the OP's URL to start).
    op = await startOidcProvider({ redirectUris: () => [`${relay.url}/login/oidc/oidc/callback`] });
    relay = await startRelay({ extra: relayFlags() });
    ownerToken = await createToken(relay, OWNER);
    agent = await startAgent(relay, ownerToken, origin.port, ['-n', 'wiki', '-a', 'alice@example.com', '-a', 'bob@example.com', '--quiet']);
    browser = await launchBrowser();
  });
  after(async () => {
    await aliceCtx?.close();
    await browser?.close();
    await agent?.stop();
    await relay?.stop();
    await op?.close();
    await smtp?.close();
    await origin?.close();
    cfg.remove();
  });

  it('OIDC: tunnel → relay login → the OP signs alice in → the page with Tunn-User-Email; a stranger gets 403 naming the email', async () => {
    aliceCtx = await browser.newContext({ ignoreHTTPSErrors: true });
    alicePage = await aliceCtx.newPage();
    op.nextUser = 'alice@example.com';
    await alicePage.goto(appUrl());
    assert.equal(new URL(alicePage.url()).host, `tunn.localhost:${relay.httpsPort}`, 'sent to the relay to sign in');
    await alicePage.click('a:has-text("Continue with Corp SSO")');
    // The first hand-off to wiki in this sign-in asks first (it learns alice's email).
    await alicePage.click('form[action="/login/continue"] button');
    await alicePage.waitForURL(appUrl());
    const seen = await bodyJson(alicePage);
    assert.equal(seen.headers['tunn-user-email'], 'alice@example.com');
    assert.ok(seen.headers['tunn-jwt-assertion'], 'the assertion is forwarded');

    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const page = await ctx.newPage();
      op.nextUser = 'mallory@example.com';
      await page.goto(appUrl());
      await page.click('a:has-text("Continue with Corp SSO")');
      await page.click('form[action="/login/continue"] button');
      await page.waitForURL(appUrl());
      const denied = await page.reload();
      assert.equal(denied?.status(), 403);
      assert.match((await page.textContent('body')) ?? '', /mallory@example\.com/);
      assert.doesNotMatch((await page.textContent('body')) ?? '', /"headers"/, 'the origin was not reached');
    } finally {
      await ctx.close();
      op.nextUser = 'alice@example.com';
    }
  });

  it('magic link: bob asks for a link, the mail arrives, the link opens the tunnel page in the same browser', async () => {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const page = await ctx.newPage();
      await page.goto(appUrl());
      const before = smtp.messages.length;
      await page.fill('form[action="/login/email"] input[name=email]', 'bob@example.com');
      await page.click('form[action="/login/email"] button');
      await page.waitForSelector('text=Check your email');
      const mail = await smtp.waitFor('bob@example.com', { after: before });
      assert.equal(mail.from, 'login@tunn.localhost');
      const link = /https:\/\/tunn\.localhost:\d+\/login\/email\/verify\?token=[A-Za-z0-9_%-]+/.exec(mail.text);
      assert.ok(link, `no sign-in link in the mail:\n${mail.text}`);
      await page.goto(link[0]);
      await page.click('form[action="/login/continue"] button');
      await page.waitForURL(appUrl());
      assert.equal((await bodyJson(page)).headers['tunn-user-email'], 'bob@example.com');
    } finally {
      await ctx.close();
    }
  });

  it('login state survives a relay restart: the agent reconnects by itself, a reload shows the page without signing in', async () => {
    const { dataDir, httpsPort, httpPort } = relay;
    const mark = agent.proc.lines.length;
    const after = (l: Record<string, unknown>): boolean => agent.proc.lines.indexOf(l) >= mark;
    await relay.stop();
    await agent.proc.waitFor((l) => l.event === 'state' && l.state === 'reconnecting' && after(l));
    relay = await startRelay({ dataDir, httpsPort, httpPort, extra: relayFlags() });
    await agent.proc.waitFor((l) => l.event === 'state' && l.state === 'online' && after(l), 30_000);
    const res = await alicePage.reload();
    assert.equal(res?.status(), 200);
    assert.equal(alicePage.url(), appUrl(), 'no detour through the login page');
    assert.equal((await bodyJson(alicePage)).headers['tunn-user-email'], 'alice@example.com');
  });

  it('rate limits: the 6th request in the minute from one IP gets 429 with Retry-After, and the owner sees the event', async () => {
    const limited = await startAgent(relay, ownerToken, origin.port, ['-n', 'limited', '--public', '--rate-limit', '5', '--quiet']);
    try {
      const statuses: number[] = [];
      let retryAfter: string | undefined;
      for (let i = 0; i < 7; i++) {
        const r = await request(`${limited.httpUrl}/echo`);
        statuses.push(r.status);
        if (r.status === 429) retryAfter ??= String(r.headers['retry-after']);
      }
      assert.deepEqual(statuses.slice(0, 5), [200, 200, 200, 200, 200]);
      assert.equal(statuses[5], 429);
      assert.match(retryAfter ?? '', /^[1-9]\d*$/, 'Retry-After in seconds');
      let events: { kind: string; tunnel: string | null; ip: string | null }[] = [];
      await until(async () => {
        events = (await cli(['events', '--kind', 'rate_limited'])).events as typeof events;
        return events.some((e) => e.tunnel === limited.host);
      }, 10_000, 'a rate_limited event in `tunn events`');
      assert.equal(events.find((e) => e.tunnel === limited.host)!.ip, '127.0.0.1');
    } finally {
      await limited.stop();
    }
  });

  it('a revoked token used at the agent hello and at the API shows up in the owner\'s events', async () => {
    const pat = JSON.parse((await api('POST', '/v1/tokens', ownerToken, JSON.stringify({ name: 'doomed' }))).text) as { token: string; id: string };
    assert.equal((await api('DELETE', `/v1/tokens/${pat.id}`, ownerToken)).status, 200);
    type Ev = { kind: string; detail: string; count: number; ip: string | null };
    const revokedUses = async (): Promise<Ev[]> => (JSON.parse((await api('GET', '/v1/events?kind=token_revoked_used', ownerToken)).text) as { events: Ev[] }).events;
    const total = async (): Promise<number> => (await revokedUses()).reduce((n, e) => n + e.count, 0);

    await assert.rejects(startAgent(relay, pat.token, origin.port, ['-n', 'zombie', '--sessions', '1']), (e: { code?: string }) => e.code === 'AUTH_TOKEN_REVOKED');
    let hello: Ev | undefined;
    await until(async () => (hello = (await revokedUses()).find((e) => e.detail === 'agent hello')) !== undefined, 10_000, 'a token_revoked_used event for the agent hello');
    assert.equal(hello!.ip, '127.0.0.1');
    const before = await total();
    // The same token at the API (within the minute it counts on the same event).
    const me = await api('GET', '/v1/me', pat.token);
    assert.equal(me.status, 401);
    assert.match(me.text, /AUTH_TOKEN_REVOKED/);
    assert.equal(await total(), before + 1, 'the API use was recorded for the owner');
    const listed = (await cli(['events', '--kind', 'token_revoked_used'])).events as Ev[];
    assert.ok(listed.some((e) => e.detail === 'agent hello'), '`tunn events` lists it');
  });

  it('without --dev the dev login is refused (404): a relay with static --tls-cert/--tls-key for tunn.example.test', async () => {
    const dir = tmpDir('tunn-static-');
    const ca = await createCa('tunn e2e test CA');
    const leaf = await issueLeaf(ca, ['tunn.example.test', '*.tunn.example.test']);
    writeFileSync(join(dir.path, 'cert.pem'), leaf.certPem);
    writeFileSync(join(dir.path, 'key.pem'), leaf.keyPem, { mode: 0o600 });
    const p = startCli([
      'relay', '--domain', 'tunn.example.test', '--tls-cert', join(dir.path, 'cert.pem'), '--tls-key', join(dir.path, 'key.pem'),
      '--listen', '127.0.0.1', '--https-port', '0', '--http-port', '0', '--data-dir', join(dir.path, 'data'), '--json',
    ]);
    try {
      const ready = await p.waitFor((l) => l.event === 'ready');
      assert.equal(ready.dev, false);
      const port = Number(ready.httpsPort);
      const relayUrl = `https://tunn.example.test:${port}`;
      const login = await httpsTo(`${relayUrl}/login`, ca.certPem);
      assert.equal(login.status, 200);
      assert.doesNotMatch(login.text, /data-dev-login|DEV LOGIN/);
      const dev = await httpsTo(`${relayUrl}/login/dev`, ca.certPem, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: relayUrl },
        body: new URLSearchParams({ email: 'eve@example.com' }).toString(),
      });
      assert.equal(dev.status, 404);
      assert.doesNotMatch(dev.headers['set-cookie']?.join(';') ?? '', /tunn=/, 'no session was created');
    } finally {
      await p.kill();
      dir.remove();
    }
  });

  it('bad identity flags: a clear error naming the flag, and the relay does not start', async () => {
    const dir = tmpDir('tunn-badflags-');
    try {
      const cases: [string[], RegExp][] = [
        [['--oidc-issuer', 'http://127.0.0.1:9'], /--oidc-issuer needs --oidc-client-id/],
        [['--oidc-issuer', 'http://127.0.0.1:9', '--oidc-client-id', 'tunn'], /--oidc-issuer needs --oidc-client-secret/],
        [['--smtp-url', 'smtp://127.0.0.1:25'], /--smtp-url needs --mail-from/],
        [['--smtp-url', 'mail.example.com:25', '--mail-from', 'a@example.com'], /--smtp-url: must be an smtp:\/\/ or smtps:\/\/ URL/],
        [['--smtp-url', 'smtp://exa%mple:25', '--mail-from', 'a@example.com'], /--smtp-url: must be an smtp:\/\/ or smtps:\/\/ URL/],
      ];
      await Promise.all(
        cases.map(async ([flags, msg], i) => {
          const p = startCli(['relay', '--dev', '--https-port', '0', '--http-port', '0', '--data-dir', join(dir.path, String(i)), '--json', ...flags]);
          assert.equal(await p.exited, 1, flags.join(' '));
          assert.match(p.stderr.join('\n'), msg, flags.join(' '));
          assert.ok(!p.lines.some((l) => l.event === 'ready'), `${flags.join(' ')}: the relay must not start`);
        }),
      );
    } finally {
      dir.remove();
    }
  });
});

/** HTTPS to a name that resolves to loopback only here (tunn.example.test), trusting `ca`. */
function httpsTo(url: string, ca: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: Record<string, string[] | string | undefined> & { 'set-cookie'?: string[] }; text: string }> {
  return new Promise((resolve, reject) => {
    const lookup = (_h: string, o: { all?: boolean }, cb: (...a: unknown[]) => void): void => (o.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4));
    const req = https.request(url, { method: opts.method ?? 'GET', headers: opts.headers, ca, lookup: lookup as never, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}
