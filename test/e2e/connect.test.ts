import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startContractServer, type ContractServer } from '../support/connect-contract.ts';
import { startPostgres, type Postgres } from '../support/postgres.ts';
import { startSshd, type Sshd } from '../support/sshd.ts';
import { CLI, NODE, startCli } from './harness.ts';

// `tunn connect` as users run it (the real CLI process) against the tunn-connect/1 contract
// server (test/support/connect-contract.ts), with real targets behind it: PostgreSQL through
// --listen and psql, OpenSSH through stdio and ProxyCommand. The relay's own side of the
// protocol comes with issue 11's phase 2; these tests then point at a real relay.

const run = promisify(execFile);

describe('tunn connect (CLI) against the tunn-connect/1 contract', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-connect-e2e-'));
  let pg: Postgres;
  let sshd: Sshd;
  let db: ContractServer;
  let ssh: ContractServer;
  const caFile = join(dir, 'relay-ca.pem');
  const sshCaFile = join(dir, 'ssh-relay-ca.pem');
  const tokenFile = (name: string, token: string): string => {
    const f = join(dir, name);
    writeFileSync(f, token + '\n', { mode: 0o600 });
    return f;
  };
  // No saved sign-in or user config leaks in from the machine.
  const env = { TUNN_CONFIG_DIR: join(dir, 'config'), TUNN_RELAY: '', TUNN_TOKEN: '' };

  before(async () => {
    pg = await startPostgres();
    sshd = await startSshd();
    db = await startContractServer({ host: 'db.tunn.test', tunnelKind: 'tcp', target: { host: '127.0.0.1', port: pg.port } });
    ssh = await startContractServer({ host: 'build.tunn.test', tunnelKind: 'tcp', target: { host: '127.0.0.1', port: sshd.port } });
    for (const s of [db, ssh]) {
      s.tokens.set('ann-token', 'ann@example.com');
      s.tokens.set('bob-token', 'bob@example.com');
      s.allowed.add('ann@example.com');
    }
    writeFileSync(caFile, db.caPem);
    writeFileSync(sshCaFile, ssh.caPem);
  });
  after(async () => {
    await db?.close();
    await ssh?.close();
    await sshd?.stop();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('psql reaches PostgreSQL through `tunn connect --listen`', async () => {
    const p = startCli(['connect', 'db.tunn.test', '--listen', '0', '--json', '--relay', db.url, '--relay-ca', caFile, '--token-file', tokenFile('ann', 'ann-token')], { env });
    try {
      const ready = await p.waitFor((l) => l.event === 'ready', 30_000);
      assert.equal(ready.host, 'db.tunn.test');
      assert.equal(ready.email, 'ann@example.com');
      assert.match(String(ready.listen), /^127\.0\.0\.1:\d+$/);
      const port = String(ready.listen).split(':')[1]!;
      const r = await run('psql', ['-h', '127.0.0.1', '-p', port, '-U', 'postgres', '-d', 'postgres', '-Atc', 'select 1'], { env: { ...process.env, PGCONNECT_TIMEOUT: '20' } });
      assert.equal(r.stdout.trim(), '1');
    } finally {
      await p.kill();
    }
  });

  // Guards: a signed-in user who is not on the allow-list is told so, and nothing listens.
  it('exits 1 with the relay\'s message, before listening, when the user is not allowed', async () => {
    const p = startCli(['connect', 'db.tunn.test', '--listen', '0', '--relay', db.url, '--relay-ca', caFile, '--token-file', tokenFile('bob', 'bob-token')], { env });
    assert.equal(await p.exited, 1);
    assert.deepEqual(p.stderr, ['tunn: error: bob@example.com is not on the allow-list of db.tunn.test: ask its owner to add you (-a bob@example.com)']);
    assert.deepEqual(p.lines, []);
  });

  it('stdio mode carries one connection and exits 0 when it ends', async () => {
    const child = spawn(NODE, [CLI, 'connect', 'build.tunn.test', '--relay', ssh.url, '--relay-ca', sshCaFile, '--token-file', tokenFile('ann-stdio', 'ann-token')], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stdin.end('SSH-2.0-tunn-test\r\n');
    const [code] = (await once(child, 'exit')) as [number];
    assert.match(out, /^SSH-2\.0-OpenSSH/, 'the server\'s banner came back on stdout');
    assert.equal(code, 0);
  });

  it('ssh -o ProxyCommand=\'tunn connect %h\' runs a command on an OpenSSH server', async () => {
    const proxy = [NODE, CLI, 'connect', '%h', '--relay', ssh.url, '--relay-ca', sshCaFile, '--token-file', tokenFile('ann-ssh', 'ann-token')].join(' ');
    const r = await run('ssh', [...sshd.sshArgs(), '-o', `ProxyCommand=${proxy}`, 'root@build.tunn.test', 'echo', 'hello-through-tunn'], { env: { ...process.env, ...env }, timeout: 60_000 });
    assert.equal(r.stdout.trim(), 'hello-through-tunn');
  });
});
