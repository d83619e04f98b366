import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { startPostgres, type Postgres } from '../support/postgres.ts';
import { startSshd, type Sshd } from '../support/sshd.ts';
import { CLI, createToken, NODE, readyOf, startCli, startRelay, tmpDir, type Proc, type RelayHandle } from './harness.ts';

// `tunn connect` as users run it (the real CLI process) against a real relay and a real agent
// (`tunn tcp`), with real targets behind them: PostgreSQL through --listen and psql, OpenSSH
// through stdio and ProxyCommand.
// Security properties: a private tcp tunnel is reachable only by a signed-in user on its
// allow-list (a stranger is told why and nothing listens); revoking the user's token cuts the
// live connections they hold within seconds, with a security event.

const run = promisify(execFile);
/** The relay sweeps every 2 s (5 s promised); generous for a shared machine. */
const CUT_WITHIN_MS = 15_000;

describe('tunn connect (CLI) through a real relay and agent', () => {
  const dir = tmpDir('tunn-connect-e2e-');
  let pg: Postgres;
  let sshd: Sshd;
  let relay: RelayHandle;
  const agents: Proc[] = [];
  let ownerToken = '';
  let annToken = '';
  let bobToken = '';
  let dbHost = '';
  let buildHost = '';
  const tokenFile = (name: string, token: string): string => {
    const f = join(dir.path, name);
    writeFileSync(f, token + '\n', { mode: 0o600 });
    return f;
  };
  // No saved sign-in or user config leaks in from the machine.
  const env = (): NodeJS.ProcessEnv => ({ TUNN_CONFIG_DIR: join(dir.path, 'config'), TUNN_RELAY: '', TUNN_TOKEN: '' });
  const relayArgs = (): string[] => ['--relay', relay.url, '--relay-ca', relay.caPath];

  const startKind = async (kind: string, args: string[]): Promise<Record<string, unknown>> => {
    const p = startCli([kind, ...args, ...relayArgs(), '--token-file', tokenFile(`owner-${agents.length}`, ownerToken), '--json'], { env: env() });
    agents.push(p);
    const ready = await readyOf(p);
    return ready;
  };

  before(async () => {
    [pg, sshd, relay] = await Promise.all([startPostgres(), startSshd(), startRelay()]);
    ownerToken = await createToken(relay, 'owner@example.com');
    annToken = await createToken(relay, 'ann@example.com');
    bobToken = await createToken(relay, 'bob@example.com');
    const db = await startKind('tcp', [String(pg.port), '-n', 'db', '-a', 'ann@example.com']);
    dbHost = String(db.host);
    assert.equal(db.url, `tcp://${dbHost}`, 'a private tcp tunnel is reached by its host, through tunn connect');
    const build = await startKind('tcp', [String(sshd.port), '-n', 'build', '-a', 'ann@example.com']);
    buildHost = String(build.host);
  });
  after(async () => {
    for (const a of agents) await a.kill();
    await relay?.stop();
    await sshd?.stop();
    await pg?.stop();
    dir.remove();
  });

  const connect = (args: string[], token: string, name: string): Proc => startCli(['connect', ...args, ...relayArgs(), '--token-file', tokenFile(name, token)], { env: env() });

  it('psql reaches PostgreSQL through `tunn connect --listen`', async () => {
    const p = connect([dbHost, '--listen', '0', '--json'], annToken, 'ann');
    try {
      const ready = await p.waitFor((l) => l.event === 'ready', 30_000);
      assert.equal(ready.host, dbHost);
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
    const p = connect([dbHost, '--listen', '0'], bobToken, 'bob');
    assert.equal(await p.exited, 1);
    assert.deepEqual(p.stderr, [`tunn: error: bob@example.com is not on the allow-list of ${dbHost}: ask its owner to add you (-a bob@example.com)`]);
    assert.deepEqual(p.lines, []);
  });

  it('refuses `tunn tcp --public` on a relay without public ports, naming the flag that turns them on', async () => {
    const p = startCli(['tcp', '5432', '-n', 'pub', '--public', ...relayArgs(), '--token-file', tokenFile('owner-pub', ownerToken), '--json'], { env: env() });
    const fatal = await p.waitFor((l) => l.event === 'fatal', 30_000);
    assert.match(String(fatal.message), /this relay has no public TCP ports: its operator turns them on with `tunn relay --tcp-ports LOW-HIGH`/);
    assert.equal(await p.exited, 1);
  });

  it('stdio mode carries one connection and exits 0 when it ends', async () => {
    const child = spawn(NODE, [CLI, 'connect', buildHost, ...relayArgs(), '--token-file', tokenFile('ann-stdio', annToken)], { env: { ...process.env, ...env() }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stdin.end('SSH-2.0-tunn-test\r\n');
    const [code] = (await once(child, 'exit')) as [number];
    assert.match(out, /^SSH-2\.0-OpenSSH/, 'the server\'s banner came back on stdout');
    assert.equal(code, 0);
  });

  it('ssh -o ProxyCommand=\'tunn connect %h\' runs a command on an OpenSSH server', async () => {
    const proxy = [NODE, CLI, 'connect', '%h', ...relayArgs(), '--token-file', tokenFile('ann-ssh', annToken)].join(' ');
    const r = await run('ssh', [...sshd.sshArgs(), '-o', `ProxyCommand=${proxy}`, `root@${buildHost}`, 'echo', 'hello-through-tunn'], { env: { ...process.env, ...env() }, timeout: 60_000 });
    assert.equal(r.stdout.trim(), 'hello-through-tunn');
  });

  /** A psql session through `port` running a long query; resolves once PostgreSQL runs it (asked directly). */
  const longQuery = async (port: string, tag: string): Promise<{ exited: Promise<unknown[]> }> => {
    const psql = spawn('psql', ['-h', '127.0.0.1', '-p', port, '-U', 'postgres', '-d', 'postgres', '-Atc', `select pg_sleep(120) as ${tag}`], { env: { ...process.env, PGCONNECT_TIMEOUT: '20' }, stdio: 'ignore' });
    const exited = once(psql, 'exit');
    const timer = setTimeout(() => psql.kill(), CUT_WITHIN_MS + 60_000);
    void exited.then(() => clearTimeout(timer));
    const running = async (): Promise<boolean> => {
      const r = await run('psql', ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-d', 'postgres', '-Atc', `select count(*) from pg_stat_activity where query like '%as ${tag}%' and pid <> pg_backend_pid()`]);
      return r.stdout.trim() === '1';
    };
    let up = false;
    for (let i = 0; i < 100 && !(up = await running()); i++) await new Promise((r) => setTimeout(r, 200));
    assert.ok(up, 'the long query runs through the tunnel');
    return { exited };
  };

  /** Resolves with psql's exit code, or fails when it is still connected CUT_WITHIN_MS after `since`. */
  const cutWithin = async (exited: Promise<unknown[]>, since: number): Promise<void> => {
    const [code] = (await exited) as [number | null];
    assert.notEqual(code, 0, 'psql lost its connection');
    assert.ok(Date.now() - since < CUT_WITHIN_MS, `cut after ${Date.now() - since} ms`);
  };

  /** The tunnel's owner sees a connection_cut event for `email` on `host` in `tunn events`. */
  const cutEventFor = async (host: string, email: string): Promise<void> => {
    const events = startCli(['events', ...relayArgs(), '--token-file', tokenFile('owner-events', ownerToken), '--json'], { env: env() });
    assert.equal(await events.exited, 0, events.stderr.join('\n'));
    const list = (events.lines[0]?.events ?? []) as { kind: string; tunnel?: string; email?: string }[];
    assert.ok(list.some((e) => e.kind === 'connection_cut' && e.tunnel === host && e.email === email), `a connection_cut event: ${JSON.stringify(events.lines).slice(0, 1000)}`);
  };

  // Guards: revoking a token cuts the live `tunn connect` streams it opened (here a psql
  // session in the middle of a long query), within seconds, and records a security event.
  it('revoking the user\'s token cuts a live psql session', async () => {
    const carol = await createToken(relay, 'ann@example.com');
    const p = connect([dbHost, '--listen', '0', '--json'], carol, 'carol');
    try {
      const ready = await p.waitFor((l) => l.event === 'ready', 30_000);
      const { exited } = await longQuery(String(ready.listen).split(':')[1]!, 'through_tunn');
      const since = Date.now();
      const rv = startCli(['relay', 'token', 'revoke', String(decodeJwt(carol).jti), '--data-dir', relay.dataDir, '--json']);
      assert.equal(await rv.exited, 0);
      await cutWithin(exited, since);
      await cutEventFor(dbHost, 'ann@example.com');
    } finally {
      await p.kill();
    }
  });

  // Guards: a user removed from the group a tunnel allows loses their live `tunn connect`
  // streams within seconds (the same sweep that re-checks HTTP connections' allow-lists).
  it('removing the user from the tunnel\'s group cuts a live psql session', async () => {
    const owner = (args: string[]): Promise<number | null> => startCli([...args, ...relayArgs(), '--token-file', tokenFile('owner-group', ownerToken), '--json'], { env: env() }).exited;
    assert.equal(await owner(['group', 'create', 'eng', 'dave@example.com']), 0);
    const ready = await startKind('tcp', [String(pg.port), '-n', 'db-eng', '-a', 'group:eng']);
    const host = String(ready.host);
    const p = connect([host, '--listen', '0', '--json'], await createToken(relay, 'dave@example.com'), 'dave');
    try {
      const up = await p.waitFor((l) => l.event === 'ready', 30_000);
      const { exited } = await longQuery(String(up.listen).split(':')[1]!, 'through_group');
      const since = Date.now();
      assert.equal(await owner(['group', 'rm', 'eng', 'dave@example.com']), 0);
      await cutWithin(exited, since);
      await cutEventFor(host, 'dave@example.com');
    } finally {
      await p.kill();
    }
  });
});
