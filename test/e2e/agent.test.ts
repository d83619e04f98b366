import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createToken, request, startAgent, startCli, startRelay, tmpDir, until, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

// Names, reconnects and the CLI's own errors, with real relay and agent processes.

describe('names', () => {
  let relay: RelayHandle;
  let origin: Origin;
  before(async () => {
    origin = await startOrigin();
    relay = await startRelay();
  });
  after(async () => {
    await relay?.stop();
    await origin?.close();
  });

  it('belong to the first account; another account gets a clear error; reserved names are refused', async () => {
    const alice = await createToken(relay, 'alice@example.com');
    const bob = await createToken(relay, 'bob@example.com');
    const a = await startAgent(relay, alice, origin.port, ['-n', 'shared', '--public', '--quiet']);
    try {
      await assert.rejects(startAgent(relay, bob, origin.port, ['-n', 'shared', '--public', '--quiet']), (e: Error & { code?: string }) => e.code === 'NAME_TAKEN' && /belongs to another account/.test(e.message));
      // Still alice's tunnel, still serving.
      assert.equal((await request(`${a.httpUrl}/echo`)).status, 200);
      await assert.rejects(startAgent(relay, alice, origin.port, ['-n', 'admin', '--public']), (e: Error & { code?: string }) => e.code === 'NAME_RESERVED');
      await assert.rejects(startAgent(relay, alice, origin.port, ['-n', 'bad_name', '--public']), (e: Error & { code?: string }) => e.code === 'NAME_INVALID');
    } finally {
      await a.stop();
    }
  });

  it('come back at once to the same account: a new agent replaces the old session, never "name in use"', async () => {
    const alice = await createToken(relay, 'alice@example.com');
    const first = await startAgent(relay, alice, origin.port, ['-n', 'mine', '--public', '--quiet']);
    const second = await startAgent(relay, alice, origin.port, ['-n', 'mine', '--public', '--quiet']);
    try {
      assert.equal(second.url, first.url);
      const replaced = await first.proc.waitFor((l) => l.event === 'fatal');
      assert.equal(replaced.code, 'REPLACED');
      assert.equal((await request(`${second.httpUrl}/echo`)).status, 200);
    } finally {
      await first.stop();
      await second.stop();
    }
  });

  it('without -n: a readable random name, kept across reconnects', async () => {
    const alice = await createToken(relay, 'alice@example.com');
    const onlineBefore = relay.proc.lines.filter((l) => l.msg === 'tunnel online').length;
    const a = await startAgent(relay, alice, origin.port, ['--public', '--quiet']);
    try {
      assert.match(a.host, /^[a-z]+-[a-z]+-[0-9a-f]{4}\.tunn\.localhost$/);
      // Both sessions serve the one name the relay picked (not a name each).
      await a.proc.waitFor((l) => l.event === 'notice' && /online \(2\/2 sessions\)/.test(String(l.message)));
      const online = relay.proc.lines.filter((l) => l.msg === 'tunnel online').slice(onlineBefore);
      assert.deepEqual(online.map((l) => l.host), [a.host]);
    } finally {
      await a.stop();
    }
  });
});

describe('reconnects', () => {
  it('survives a relay restart: offline page while away, the same URL works again', async () => {
    const origin = await startOrigin();
    let relay = await startRelay();
    const token = await createToken(relay, 'alice@example.com');
    const agent = await startAgent(relay, token, origin.port, ['-n', 'steady', '--public', '--quiet']);
    try {
      assert.equal((await request(`${agent.httpUrl}/echo`)).status, 200);
      const { dataDir, httpsPort, httpPort } = relay;
      await relay.stop();
      await agent.proc.waitFor((l) => l.event === 'state' && l.state === 'reconnecting');
      relay = await startRelay({ dataDir, httpsPort, httpPort });
      // While the agent has not reconnected yet, the relay knows the name: offline, not 404.
      const early = await request(`${agent.httpUrl}/echo`);
      assert.ok([200, 503].includes(early.status), `got ${early.status}`);
      if (early.status === 503) assert.match(early.text, /Tunnel offline/);
      await until(async () => (await request(`${agent.httpUrl}/echo`)).status === 200, 15_000, 'the tunnel to come back');
      assert.equal(agent.proc.child.exitCode, null, 'the agent kept running');
      await agent.stop();
      // Agent gone: the relay answers "offline" (503), not a hang.
      await until(async () => (await request(`${agent.httpUrl}/echo`)).status === 503, 5000, 'offline page');
    } finally {
      await agent.stop();
      await relay.stop();
      await origin.close();
    }
  });

  it('keeps running while the local target is down, and serves again when it is back', async () => {
    const relay = await startRelay();
    const token = await createToken(relay, 'alice@example.com');
    let origin = await startOrigin();
    const port = origin.port;
    const agent = await startAgent(relay, token, port, ['-n', 'flappy', '--public', '--quiet']);
    try {
      assert.equal((await request(`${agent.httpUrl}/echo`)).status, 200);
      await origin.close();
      assert.equal((await request(`${agent.httpUrl}/echo`)).status, 502);
      origin = await startOrigin();
      // A new origin on the same port. Another process on this machine may take the freed port
      // for a moment: retry, and fail (not skip) if it stays taken.
      origin.server.close();
      await listenAgain(origin.server, port, 15_000);
      await until(async () => (await request(`${agent.httpUrl}/echo`)).status === 200, 5000, 'target back');
      assert.equal(agent.proc.child.exitCode, null);
    } finally {
      await agent.stop();
      await relay.stop();
      await origin.close();
    }
  });
});

describe('signing keys', () => {
  it('rotate without signing anyone out; a retired key no longer signs anyone in', async () => {
    const origin = await startOrigin();
    let relay = await startRelay();
    const keysCli = async (...args: string[]): Promise<Record<string, unknown>> => {
      const p = startCli(['relay', 'keys', ...args, '--data-dir', relay.dataDir, '--json']);
      const code = await p.exited;
      return { code, line: p.lines[p.lines.length - 1], stderr: p.stderr.join('\n') };
    };
    try {
      const before = await createToken(relay, 'alice@example.com');
      const oldKid = ((await keysCli('list')).line as { keys: { kid: string }[] }).keys[0]!.kid;
      assert.equal((await keysCli('retire', oldKid)).code, 1, 'the only key cannot be retired');
      assert.equal((await keysCli('rotate')).code, 0);
      const after = await createToken(relay, 'bob@example.com');
      // The running relay accepts tokens of both keys.
      const a = await startAgent(relay, before, origin.port, ['-n', 'old-key', '--public', '--quiet']);
      const b = await startAgent(relay, after, origin.port, ['-n', 'new-key', '--public', '--quiet']);
      await a.stop();
      await b.stop();
      const retired = await keysCli('retire', oldKid);
      assert.equal(retired.code, 0, String(retired.stderr));
      const { dataDir, httpsPort, httpPort } = relay;
      await relay.stop();
      relay = await startRelay({ dataDir, httpsPort, httpPort });
      await assert.rejects(startAgent(relay, before, origin.port, ['-n', 'old-key', '--public']), (e: Error & { code?: string }) => e.code === 'AUTH_INVALID_TOKEN');
      const again = await startAgent(relay, after, origin.port, ['-n', 'new-key', '--public', '--quiet']);
      await again.stop();
    } finally {
      await relay.stop();
      await origin.close();
    }
  });
});

describe('CLI', () => {
  it('prints help for the program and each command', async () => {
    for (const args of [['--help'], ['relay', '--help'], ['dev', '--help'], ['login', '--help'], ['group', '--help'], ['relay', 'token', 'create', '--help']]) {
      const p = startCli(args);
      assert.equal(await p.exited, 0, args.join(' '));
      assert.match(p.lines.map((l) => l.raw).join('\n'), /Usage: tunn/);
    }
  });

  it('prints completion scripts for bash, zsh and fish, and refuses other shells', async () => {
    for (const shell of ['bash', 'zsh', 'fish']) {
      const p = startCli(['completion', shell]);
      assert.equal(await p.exited, 0);
      const text = p.lines.map((l) => l.raw).join('\n');
      assert.match(text, /relay/);
      assert.match(text, shell === 'fish' ? /complete -c tunn/ : /complete -F _tunn tunn/);
    }
    const bad = startCli(['completion', 'tcsh']);
    assert.equal(await bad.exited, 1);
    assert.match(bad.stderr.join('\n'), /use bash, zsh or fish/);
  });

  it('explains bad input and exits non-zero without connecting', async () => {
    // Data dirs of its own: a fixed /tmp path is shared with every other run on the machine.
    const scratch = tmpDir('tunn-bad-input-');
    const dir = (name: string): string => join(scratch.path, name);
    const cases: [string[], RegExp][] = [
      [['8080', '--relay', 'https://tunn.localhost:1'], /--token: is required: pass --token-file FILE or set TUNN_TOKEN/],
      [['notaport', '--relay', 'https://x.example', '--token', 't'], /"notaport" is not a target/],
      [['8080', '--relay', 'not a url', '--token', 't'], /--relay.*(is not a URL|must be a URL)/],
      [['relay', '--domain', 'bad domain', '--https-port', '99999'], /--domain: must be a DNS name[\s\S]*--https-port: must be 0-65535/],
      [['relay', '--domain', 'tunn.example.test', '--https-port', '0', '--http-port', '0', '--data-dir', dir('no-cert')], /needs certificates: pass --acme-directory letsencrypt .*or --tls-cert and --tls-key, or run with --dev/],
      [['relay', 'token', 'create', '--email', 'nope', '--data-dir', dir('x')], /--email "nope" is not an email address/],
      [['8080', '--public', '-a', 'a@b.com', '--relay', 'https://x.example', '--token', 't'], /--public and -a do not go together/],
      // A start that fails after listeners opened still exits (it used to hang).
      [['relay', '--dev', '--https-port', '0', '--http-port', '0', '--dns-port', '0', '--data-dir', dir('acme-ca'), '--acme-ca', '/nonexistent.pem', '--acme-directory', 'https://127.0.0.1:1/dir'], /cannot read --acme-ca \/nonexistent\.pem/],
      [['relay', '--dev', '--https-port', 'abc', '--oidc-issuer', 'https://id.example.com'], /--oidc-issuer needs --oidc-client-id[\s\S]*--https-port: must be a port number/],
    ];
    for (const [args, msg] of cases) {
      const p = startCli(args, { env: { TUNN_TOKEN: '', TUNN_RELAY: '', TUNN_CONFIG_DIR: '/nonexistent-tunn-config' } });
      const code = await p.exited;
      assert.notEqual(code, 0, args.join(' '));
      assert.match(p.stderr.join('\n'), msg, args.join(' '));
    }
    scratch.remove();
  });

  it('takes every relay setting from a --config file, --dev included', async () => {
    const dir = tmpDir('tunn-cfgfile-');
    try {
      const file = join(dir.path, 'relay.json');
      writeFileSync(file, JSON.stringify({ dev: true, httpsPort: 0, httpPort: 0, dataDir: join(dir.path, 'data') }));
      const p = startCli(['relay', '--config', file, '--json']);
      const ready = await p.waitFor((l) => l.event === 'ready');
      assert.equal(ready.domain, 'tunn.localhost');
      await p.kill();
    } finally {
      dir.remove();
    }
  });

  it('fails fast with a clear message when the token is refused', async () => {
    const relay = await startRelay();
    try {
      const p = startCli(['8080', '--relay', relay.url, '--relay-ca', relay.caPath, '--token', 'bogus.token.here', '--json']);
      const fatal = await p.waitFor((l) => l.event === 'fatal');
      assert.equal(fatal.code, 'AUTH_INVALID_TOKEN');
      assert.equal(await p.exited, 1);
    } finally {
      await relay.stop();
    }
  });
});

/** Listens on `port` again, retrying while it is in use, until `withinMs`; then throws. */
async function listenAgain(server: import('node:net').Server, port: number, withinMs: number): Promise<void> {
  const end = Date.now() + withinMs;
  for (;;) {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.removeListener('error', reject);
          resolve();
        });
      });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || Date.now() > end) throw new Error(`cannot listen on port ${port} again for the target: ${(err as Error).message}`, { cause: err });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
