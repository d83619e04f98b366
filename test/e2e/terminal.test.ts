import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, createToken, NODE, request, ROOT, startAgent, startCli, startRelay, tmpDir, until, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';
import { createCa, issueLeaf } from '../../src/certs/dev-ca.ts';

// Issue 17, "the agent's terminal tells the truth", with real relay and agent processes:
// the request log shows the requests the relay answered itself (refused at the edge, target
// down) with who and why, /metrics counts the refusals, the terminal layout is checked through
// a pseudo-terminal (`script`), and permanent connect errors stop the agent at once.

const ESC = '\x1b[';

/** A port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('the request log shows what the relay answered itself', () => {
  let relay: RelayHandle;
  let origin: Origin;
  let alice: string;
  let bob: string;
  before(async () => {
    origin = await startOrigin();
    relay = await startRelay();
    alice = await createToken(relay, 'alice@example.com');
    bob = await createToken(relay, 'bob@example.com');
  });
  after(async () => {
    await relay?.stop();
    await origin?.close();
  });

  it('403 with the visitor’s email, 401 sign-in, 429 rate limit, IP refused, 401 basic auth, 502 with the target’s error; counted in /metrics', async () => {
    const cfg = tmpDir('tunn-term-');
    const pw = join(cfg.path, 'basic');
    writeFileSync(pw, 'u:p\n', { mode: 0o600 });
    const priv = await startAgent(relay, alice, origin.port, ['-n', 'refusals', '-a', 'carol@example.com', '--rate-limit', '4', '--no-inspect']);
    const ipOnly = await startAgent(relay, alice, origin.port, ['-n', 'iponly', '--public', '--allow-ip', '10.0.0.0/8', '--no-inspect']);
    const basic = await startAgent(relay, alice, origin.port, ['-n', 'basic', '--public', '--basic-auth-file', pw, '--no-inspect']);
    const down = await startAgent(relay, alice, await closedPort(), ['-n', 'down', '--public', '--no-inspect']);
    try {
      assert.equal((await request(`${priv.httpUrl}/as-bob`, { headers: { authorization: `Bearer ${bob}` } })).status, 403);
      assert.equal((await request(`${priv.httpUrl}/anonymous`)).status, 401);
      let limited = 0;
      for (let i = 0; i < 6; i++) if ((await request(`${priv.httpUrl}/flood`)).status === 429) limited++;
      assert.ok(limited > 0, 'the rate limit bit');
      assert.equal((await request(`${ipOnly.httpUrl}/from-loopback`)).status, 403);
      assert.equal((await request(`${basic.httpUrl}/no-password`)).status, 401);
      assert.equal((await request(`${down.httpUrl}/target-down`)).status, 502);

      const line = (p: typeof priv, path: string, status?: number) => p.proc.waitFor((l) => l.event === 'request' && l.by === 'relay' && l.path === path && (status === undefined || l.status === status));
      const asBob = await line(priv, '/as-bob');
      assert.deepEqual([asBob.status, asBob.reason, asBob.who], [403, 'policy', 'bob@example.com']);
      assert.deepEqual([(await line(priv, '/anonymous')).reason, (await line(priv, '/anonymous')).status], ['sign-in', 401]);
      const flood = await line(priv, '/flood', 429);
      assert.deepEqual([flood.status, flood.reason, flood.detail], [429, 'rate-limit', '4/min per client IP']);
      const ip = await line(ipOnly, '/from-loopback');
      assert.deepEqual([ip.status, ip.reason, ip.ip], [403, 'ip', '127.0.0.1']);
      assert.deepEqual([(await line(basic, '/no-password')).reason], ['basic-auth']);
      const tgt = await line(down, '/target-down');
      assert.deepEqual([tgt.status, tgt.reason, tgt.detail], [502, 'target', 'ECONNREFUSED']);

      const metrics = (await request(`${relay.url}/metrics`, { ca: relay.ca })).text;
      const host = (u: string) => new URL(u).hostname.replace(/\./g, '\\.');
      assert.match(metrics, new RegExp(`tunn_refused_total\\{tunnel="${host(priv.url)}",reason="policy"\\} 1\\b`));
      assert.match(metrics, new RegExp(`tunn_refused_total\\{tunnel="${host(priv.url)}",reason="sign-in"\\} [1-9]`));
      assert.match(metrics, new RegExp(`tunn_refused_total\\{tunnel="${host(priv.url)}",reason="rate-limit"\\} ${limited}\\b`));
      assert.match(metrics, new RegExp(`tunn_refused_total\\{tunnel="${host(ipOnly.url)}",reason="ip"\\} 1\\b`));
      assert.match(metrics, new RegExp(`tunn_refused_total\\{tunnel="${host(basic.url)}",reason="basic-auth"\\} 1\\b`));
      // Refusals are 4xx answers too (today's tunn_requests_total had none of them).
      assert.match(metrics, new RegExp(`tunn_requests_total\\{tunnel="${host(priv.url)}",code="4xx"\\} [1-9]`));
    } finally {
      await Promise.all([priv.stop(), ipOnly.stop(), basic.stop(), down.stop()]);
      cfg.remove();
    }
  });

  it('a target whose certificate the agent does not trust: 502 in the log with the TLS error', async () => {
    // A certificate from a CA the agent has never heard of.
    const leaf = await issueLeaf(await createCa('untrusted test CA'), ['localhost'], 1);
    const server = https.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (_req, res) => res.end('ok')).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as net.AddressInfo).port;
    const a = await startAgent(relay, alice, `https://localhost:${port}`, ['-n', 'selfsigned', '--public', '--no-inspect']);
    try {
      assert.equal((await request(`${a.httpUrl}/tls`)).status, 502);
      const l = await a.proc.waitFor((x) => x.event === 'request' && x.by === 'relay' && x.path === '/tls');
      assert.deepEqual([l.status, l.reason], [502, 'target']);
      assert.match(String(l.detail), /SELF_SIGNED|CERT/);
    } finally {
      await a.stop();
      server.close();
    }
  });

  it('a target that closes without answering: 502 in the log saying so', async () => {
    const server = net.createServer((c) => c.once('data', () => c.destroy())).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const a = await startAgent(relay, alice, (server.address() as net.AddressInfo).port, ['-n', 'hangup', '--public', '--no-inspect']);
    try {
      assert.equal((await request(`${a.httpUrl}/hangup`)).status, 502);
      const l = await a.proc.waitFor((x) => x.event === 'request' && x.by === 'relay' && x.path === '/hangup');
      assert.deepEqual([l.status, l.reason, l.detail], [502, 'target', 'EMPTY_RESPONSE']);
    } finally {
      await a.stop();
      server.close();
    }
  });

  /** Runs the agent in a pseudo-terminal `columns` wide; resolves with everything it printed once `done` holds. */
  async function inTerminal(args: string[], env: NodeJS.ProcessEnv, columns: number, visit: (url: string) => Promise<void>, done: (out: string) => boolean): Promise<string> {
    const quoted = [NODE, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const child = spawn('script', ['-qfec', `stty cols ${columns} rows 40; exec ${quoted}`, '/dev/null'], { cwd: ROOT, env: { ...process.env, TUNN_TOKEN: alice, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    try {
      await until(() => /🔗 \S+/.test(out), 20_000, `the tunnel URL in the terminal: ${out}`);
      const url = /🔗 (?:\x1b\[1m)?(https?:\/\/\S+?)(?:\x1b\[0m)? /.exec(out)![1]!;
      await visit(url.replace('https:', 'http:').replace(`:${relay.httpsPort}`, `:${relay.httpPort}`));
      await until(() => done(out), 15_000, `the request lines in the terminal: ${out}`);
      return out;
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }

  it('in a terminal: coloured statuses, paths cut to the width, the relay’s refusals aligned with the rest, a target down counted as such; plain with NO_COLOR or --no-color', async () => {
    const long = '/long/' + 'p'.repeat(200);
    const base = ['--relay', relay.url, '--relay-ca', relay.caPath, '-a', 'carol@example.com', '--no-inspect'];
    // A target that answers, except /down, where it hangs up without answering (the relay's 502).
    const target = http.createServer((req, res) => (req.url === '/down' ? req.socket.destroy() : res.end('ok'))).listen(0, '127.0.0.1');
    await new Promise((r) => target.once('listening', r));
    const port = String((target.address() as net.AddressInfo).port);
    const visit = async (url: string): Promise<void> => {
      assert.equal((await request(`${url}${long}`, { headers: { authorization: `Bearer ${alice}` } })).status, 200);
      assert.equal((await request(`${url}/denied`, { headers: { authorization: `Bearer ${bob}` } })).status, 403);
      assert.equal((await request(`${url}/down`, { headers: { authorization: `Bearer ${alice}` } })).status, 502);
    };
    const bothLines = (out: string): boolean => out.includes('/long/ppp') && out.includes('bob@example.com not allowed') && out.includes('closed the connection without answering');
    // The 502 is a target error, not a refusal: the status line counts the 403 alone as refused.
    const liveStatus = /\r\x1b\[2K\x1b\[32m●\x1b\[0m online · 1 request · 1 refused · 1 target error · Ctrl-C to stop/;
    try {
      const out = await inTerminal([port, '-n', 'tty', ...base], {}, 72, visit, (o) => bothLines(o) && liveStatus.test(o));
      // What the terminal shows of each line: after its last carriage return (the status line is drawn, then cleared with CR + erase-line).
      const lines = out.split('\n').map((l) => l.replace(/\r$/, '').split('\r').at(-1)!.replace(/^\x1b\[2K/, ''));
      const ok = lines.find((l) => l.includes('/long/'))!;
      const refused = lines.find((l) => l.includes('not allowed'))!;
      assert.ok(ok.includes(`${ESC}32m200`), `a green 200: ${JSON.stringify(ok)}`);
      assert.ok(refused.includes(`${ESC}33m403`), `a yellow 403: ${JSON.stringify(refused)}`);
      const visible = (l: string) => l.replace(/\x1b\[[0-9;]*m/g, '');
      assert.ok(visible(ok).length <= 72, `cut to 72 columns: ${visible(ok).length}`);
      assert.match(visible(ok), /…$/);
      assert.equal(visible(ok).indexOf('200'), visible(refused).indexOf('403'), 'statuses aligned');
      assert.match(out, /Allowed: carol@example\.com and you/);
      assert.match(out, liveStatus, 'the live status line under the log, redrawn in place with the counts');

      for (const [extra, env] of [[['--no-color'], {}], [[], { NO_COLOR: '1' }]] as const) {
        const plain = await inTerminal([port, '-n', 'tty', ...base, ...extra], env, 72, visit, bothLines);
        assert.ok(!plain.includes(ESC), `no colour and no live status line with ${extra.join(' ') || 'NO_COLOR=1'}`);
      }
    } finally {
      target.close();
    }
  });
});

describe('permanent connect errors stop the agent at once; transient ones keep the back-off', () => {
  let relay: RelayHandle;
  const cfg = tmpDir('tunn-term-cfg-');
  // No saved login from the machine running the tests.
  const env = { TUNN_CONFIG_DIR: cfg.path, TUNN_TOKEN: 'not.a.token', TUNN_RELAY: '' };
  before(async () => {
    relay = await startRelay();
  });
  after(async () => {
    await relay?.stop();
    cfg.remove();
  });

  async function fails(args: string[], message: RegExp, code?: string): Promise<void> {
    const p = startCli(['8080', '--no-inspect', ...args], { env });
    const exit = await Promise.race([p.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))]);
    await p.kill();
    assert.equal(exit, 1, `${args.join(' ')}: ${p.stderr.join('\n')}`);
    assert.match(p.stderr.join('\n'), message, args.join(' '));
    if (code) assert.ok(p.stderr.length < 6, `no retries before giving up: ${p.stderr.join('\n')}`);
  }

  it('a relay URL with http:// or without a scheme says to use https://', async () => {
    await fails(['--relay', `http://tunn.localhost:${relay.httpsPort}`], new RegExp(`agents reach the relay over TLS; use https://tunn\\.localhost:${relay.httpsPort}`));
    await fails(['--relay', `tunn.localhost:${relay.httpsPort}`], new RegExp(`needs the https:// scheme, e\\.g\\. https://tunn\\.localhost:${relay.httpsPort}`));
    await fails(['--relay', 'tunn.localhost'], /--relay "tunn\.localhost" is not a URL; pass e\.g\. https:\/\/tunn\.example\.com/);
  });

  it('an unknown host and an untrusted certificate exit with what to do', async () => {
    await fails(['--relay', 'https://no-such-relay.invalid'], /relay host no-such-relay\.invalid not found .*check the host in --relay/, 'RELAY_NOT_FOUND');
    // The dev relay's certificate, without --relay-ca.
    await fails(['--relay', relay.url], /does not trust the relay's certificate .*--relay-ca FILE/, 'RELAY_CERT_UNTRUSTED');
  });

  it('a refused connection keeps retrying with back-off', async () => {
    const p = startCli(['8080', '--no-inspect', '--relay', `https://tunn.localhost:${await closedPort()}`, '--json'], { env });
    try {
      await until(() => p.lines.filter((l) => l.event === 'state' && l.state === 'reconnecting').length >= 3, 20_000, 'three reconnect attempts');
      assert.equal(p.child.exitCode, null, 'still running');
      assert.match(String(p.lines.find((l) => l.state === 'reconnecting')!.detail), /refused the connection/);
    } finally {
      await p.kill();
    }
  });
});
