import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createToken, startCli, startRelay, tmpDir, type RelayHandle } from './harness.ts';

// Security property (issue 9, "Also"): a secret typed on the command line is readable in
// /proc/<pid>/cmdline by every local user. The agent takes its token from --token-file (or the
// environment) and works; given on the command line it still works but the CLI warns, naming
// the safe forms.

describe('secrets off the command line', () => {
  const tmp = tmpDir('tunn-secret-flags-');
  let relay: RelayHandle;
  let token: string;
  before(async () => {
    relay = await startRelay();
    token = await createToken(relay, 'alice@example.com');
  });
  after(async () => {
    await relay?.stop();
    tmp.remove();
  });

  const agentArgs = (...extra: string[]) => ['9', '--relay', relay.url, '--relay-ca', relay.caPath, '--json', ...extra];
  const warning = '--token on the command line is visible to every local user (ps, /proc/<pid>/cmdline); use --token-file FILE or set TUNN_TOKEN instead';

  it('the agent connects with --token-file, and nothing is warned', async () => {
    const f = join(tmp.path, 'token');
    writeFileSync(f, token + '\n', { mode: 0o600 });
    const p = startCli(agentArgs('-n', 'from-file', '--token-file', f));
    try {
      const ready = await p.waitFor((l) => l.event === 'ready' || l.event === 'fatal');
      assert.equal(ready.event, 'ready', JSON.stringify(ready));
      assert.ok(!p.stderr.some((l) => l.includes('warning')), p.stderr.join('\n'));
    } finally {
      await p.kill();
    }
  });

  it('the agent connects with TUNN_TOKEN_FILE, and nothing is warned', async () => {
    const f = join(tmp.path, 'token-env');
    writeFileSync(f, token + '\n', { mode: 0o600 });
    const p = startCli(agentArgs('-n', 'from-env-file'), { env: { TUNN_TOKEN_FILE: f } });
    try {
      assert.equal((await p.waitFor((l) => l.event === 'ready' || l.event === 'fatal')).event, 'ready');
      assert.ok(!p.stderr.some((l) => l.includes('warning')), p.stderr.join('\n'));
    } finally {
      await p.kill();
    }
  });

  it('--token on the command line works but warns on stderr', async () => {
    const p = startCli(agentArgs('-n', 'on-cmdline', '--token', token));
    try {
      assert.equal((await p.waitFor((l) => l.event === 'ready' || l.event === 'fatal')).event, 'ready');
      assert.ok(p.stderr.includes(`tunn: warning: ${warning}`), p.stderr.join('\n'));
    } finally {
      await p.kill();
    }
  });

  it('API commands take --token-file too, and a missing file stops them with a clear error', async () => {
    const f = join(tmp.path, 'token-api');
    writeFileSync(f, token + '\n', { mode: 0o600 });
    const env = { TUNN_CONFIG_DIR: join(tmp.path, 'cfg') };
    const ok = startCli(['whoami', '--relay', relay.url, '--relay-ca', relay.caPath, '--token-file', f], { env });
    assert.equal(await ok.exited, 0, ok.stderr.join('\n'));
    const missing = join(tmp.path, 'nope');
    const bad = startCli(['whoami', '--relay', relay.url, '--relay-ca', relay.caPath, '--token-file', missing], { env });
    assert.equal(await bad.exited, 1);
    assert.ok(bad.stderr.join('\n').includes(`--token-file ${missing}: no such file; create it holding only the secret (chmod 600), or set TUNN_TOKEN`), bad.stderr.join('\n'));
  });

  it('the relay warns about a password in --store, before anything else', async () => {
    const p = startCli(['relay', '--dev', '--data-dir', join(tmp.path, 'r1'), '--https-port', '0', '--http-port', '0', '--store', 'postgres://tunn:pw@127.0.0.1:1/tunn']);
    assert.equal(await p.exited, 1);
    assert.equal(p.stderr[0], 'tunn: warning: the password in --store on the command line is visible to every local user (ps, /proc/<pid>/cmdline); use --store-file FILE or set TUNN_STORE instead');
  });

  it('the relay warns about a secret flag and still starts', async () => {
    const p = startCli(['relay', '--dev', '--data-dir', join(tmp.path, 'r2'), '--https-port', '0', '--http-port', '0', '--json', '--metrics-token', 'metrics-token-0123456789']);
    try {
      await p.waitFor((l) => l.event === 'ready');
      assert.ok(p.stderr.includes('tunn: warning: --metrics-token on the command line is visible to every local user (ps, /proc/<pid>/cmdline); use --metrics-token-file FILE or set TUNN_METRICS_TOKEN instead'), p.stderr.join('\n'));
    } finally {
      await p.kill();
    }
  });
});
