import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { startPostgres, type Postgres } from '../support/postgres.ts';
import { request, startAgent, startCli, startRelay, until, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

// The real relay on PostgreSQL (`tunn relay --store postgres://…`), with the operator's
// `tunn relay token …` commands on the same database, an agent and a visitor through a public
// tunnel, and a relay restart on the same database keeping names and tokens.

async function tokenCli(args: string[]): Promise<Record<string, unknown>> {
  const p = startCli(['relay', 'token', ...args, '--json']);
  const code = await p.exited;
  assert.equal(code, 0, `tunn relay token ${args.join(' ')}: ${p.stderr.join('\n')}`);
  return p.lines.at(-1)!;
}

describe('relay on PostgreSQL', () => {
  let postgres: Postgres;
  let origin: Origin;
  before(async () => {
    postgres = await startPostgres();
    origin = await startOrigin();
  });
  after(async () => {
    await origin?.close();
    await postgres?.stop();
  });

  it('serves a public tunnel, keeps names and tokens across a restart, and the token commands work on it', async () => {
    const url = await postgres.createDatabase();
    const store = ['--store', url];
    let relay: RelayHandle | undefined = await startRelay({ extra: store });
    const dataDir = relay.dataDir;
    const agents: { stop(): Promise<void> }[] = [];
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      // The operator creates tokens against the relay's database (the data dir holds the secret key).
      const [alice, bob] = await Promise.all([
        tokenCli(['create', '--email', 'Alice@Example.com', '--name', 'laptop', '--store', url, '--data-dir', dataDir]),
        tokenCli(['create', '--email', 'bob@example.com', '--store', url, '--data-dir', dataDir]),
      ]);
      assert.equal(alice.email, 'alice@example.com');
      assert.equal(existsSync(join(dataDir, 'tunn.db')), false, 'nothing went to a SQLite file');
      const { rows: tokenRows } = await db.query('SELECT t.label, a.email FROM tokens t JOIN accounts a ON a.id = t.account_id WHERE t.kind = $1 ORDER BY a.email', ['agent']);
      assert.deepEqual(tokenRows, [
        { label: 'laptop', email: 'alice@example.com' },
        { label: 'agent', email: 'bob@example.com' },
      ]);

      const a = await startAgent(relay, String(alice.token), origin.port, ['-n', 'pgapp', '--public', '--quiet']);
      agents.push(a);
      const res = await request(`${a.url}/echo?x=1`, { ca: relay.ca });
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.text).url, '/echo?x=1');
      assert.equal((await request(`${a.httpUrl}/echo`)).status, 200);
      const { rows: names } = await db.query('SELECT n.name, a.email FROM names n JOIN accounts a ON a.id = n.account_id');
      assert.deepEqual(names, [{ name: 'pgapp', email: 'alice@example.com' }]);

      // Restart on the same database and ports: the agent reconnects under its name.
      const { httpsPort, httpPort } = relay;
      await relay.stop();
      await a.proc.waitFor((l) => l.event === 'state' && l.state === 'reconnecting');
      relay = await startRelay({ dataDir, httpsPort, httpPort, extra: store });
      await until(async () => (await request(`${a.httpUrl}/echo`).catch(() => ({ status: 0 }))).status === 200, 15_000, 'the tunnel to come back after the restart');
      assert.equal((await request(`${a.url}/echo`, { ca: relay.ca })).status, 200);

      // The name is still alice's: bob's token (created before the restart) works, but not for her name.
      await assert.rejects(startAgent(relay, String(bob.token), origin.port, ['-n', 'pgapp', '--public', '--quiet']), (e: Error & { code?: string }) => e.code === 'NAME_TAKEN');
      const b = await startAgent(relay, String(bob.token), origin.port, ['-n', 'pgbob', '--public', '--quiet']);
      agents.push(b);
      assert.equal((await request(`${b.httpUrl}/echo`)).status, 200);

      // List and revoke through the CLI on the database; the revoked token is refused.
      const list = await tokenCli(['list', '--store', url, '--data-dir', dataDir]);
      const tokens = list.tokens as { id: string; email: string; name: string; revokedAt: string | null }[];
      assert.deepEqual(tokens.map((t) => t.email).sort(), ['alice@example.com', 'bob@example.com']);
      const bobId = tokens.find((t) => t.email === 'bob@example.com')!.id;
      await tokenCli(['revoke', bobId, '--store', url, '--data-dir', dataDir]);
      await b.stop();
      await assert.rejects(startAgent(relay, String(bob.token), origin.port, ['-n', 'pgbob2', '--public', '--quiet']), (e: Error & { code?: string }) => e.code === 'AUTH_TOKEN_REVOKED');
    } finally {
      for (const x of agents) await x.stop();
      await relay?.stop();
      await db.end();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
