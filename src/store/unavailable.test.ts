import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createServer, type Socket } from 'node:net';
import { startPostgres } from '../../test/support/postgres.ts';
import { freePort } from '../../test/support/ports.ts';
import { PassThrough } from 'node:stream';
import { isTunnError } from '../lib/errors.ts';
import { createLogger } from '../lib/logger.ts';
import { ensureAccount } from './accounts.ts';
import { openStore, type Store } from './store.ts';
import { storeUnavailable } from './unavailable.ts';

// Database faults reach callers as one coded error (UNAVAILABLE) that says what is wrong and
// what to do; the API, the tunnel gate and agent sessions rely on it to answer "try again"
// instead of "invalid token" or a crash (the end-to-end rows are test/e2e/faults.test.ts).
// Real databases only: a SQLite file that fills up (max_page_count) and a PostgreSQL port
// where nothing listens.

describe('store faults', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tunn-unavail-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a full SQLite database is UNAVAILABLE saying the disk is full; what was saved stays readable', async () => {
    const store: Store = await openStore(join(dir, 'full.db'));
    try {
      await ensureAccount(store, 'before@example.com', Date.now());
      const { rows } = await sql<{ page_count: number }>`PRAGMA page_count`.execute(store.db);
      await sql.raw(`PRAGMA max_page_count = ${rows[0]!.page_count + 1}`).execute(store.db);
      const err = await (async () => {
        for (let i = 0; i < 10_000; i++) await ensureAccount(store, `user-${i}-${'x'.repeat(200)}@example.com`, Date.now());
      })().then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(isTunnError(err, 'UNAVAILABLE'), `got ${String(err)}`);
      assert.match(err.message, /disk holding its database is full.*free space in the data dir/);
      assert.match(String((err.cause as Error).message), /full/);
      const kept = await store.db.selectFrom('accounts').select('email').where('email', '=', 'before@example.com').executeTakeFirst();
      assert.equal(kept?.email, 'before@example.com');
    } finally {
      await store.close();
    }
  });

  it('a constraint violation is not a fault: it passes unchanged', async () => {
    const store = await openStore(join(dir, 'plain.db'));
    try {
      await store.db.insertInto('accounts').values({ id: 'a1', email: 'dup@example.com', acme_id: 'x1', created_at: new Date().toISOString() }).execute();
      const err = await store.db
        .insertInto('accounts')
        .values({ id: 'a2', email: 'dup@example.com', acme_id: 'x2', created_at: new Date().toISOString() })
        .execute()
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      assert.ok(err instanceof Error && !isTunnError(err), `got ${String(err)}`);
      assert.match(err.message, /UNIQUE/);
      assert.equal(storeUnavailable(err), undefined);
    } finally {
      await store.close();
    }
  });

  it('an unreachable PostgreSQL is UNAVAILABLE saying so, with the cause kept', async () => {
    const port = await freePort();
    const err = await openStore(`postgres://postgres@127.0.0.1:${port}/tunn`).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isTunnError(err, 'UNAVAILABLE'), `got ${String(err)}`);
    assert.match(err.message, /the relay's database is unreachable \(.*ECONNREFUSED.*\); try again shortly/);
  });

  // Security property (with src/relay/live-revocation.ts): a database that stops answering
  // cannot hold the relay forever. A server that accepts the connection and then says nothing
  // (half-open TCP) used to hang openStore and every query, and with them the revocation sweep.
  it('a PostgreSQL that accepts and never answers is UNAVAILABLE after the connect timeout', { timeout: 60_000 }, async () => {
    const socks: Socket[] = [];
    const silent = createServer((s) => socks.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as { port: number }).port;
      const err = await openStore(`postgres://postgres@127.0.0.1:${port}/tunn`, { connectMs: 300 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(isTunnError(err, 'UNAVAILABLE'), `got ${String(err)}`);
      assert.match(err.message, /database is unreachable \(.*timeout.*\); try again shortly/);
    } finally {
      for (const s of socks) s.destroy();
      silent.close();
    }
  });

  it('a PostgreSQL query that never answers is UNAVAILABLE after the query timeout, and the store keeps working', { timeout: 120_000 }, async () => {
    const pg = await startPostgres();
    const store = await openStore(await pg.createDatabase(), { queryMs: 300 });
    try {
      const err = await sql`SELECT pg_sleep(30)`.execute(store.db).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(isTunnError(err, 'UNAVAILABLE'), `got ${String(err)}`);
      assert.match(err.message, /Query read timeout.*try again shortly/);
      // The timed-out connection was dropped, not handed to the next query.
      const { rows } = await sql<{ one: number }>`SELECT 1 AS one`.execute(store.db);
      assert.equal(rows[0]!.one, 1);
    } finally {
      await store.close();
      await pg.stop();
    }
  });

  it('an idle PostgreSQL connection cut by the server is logged with where it went, and the store keeps working', { timeout: 120_000 }, async () => {
    const pg = await startPostgres();
    const lines: string[] = [];
    const sink = new PassThrough();
    sink.on('data', (b: Buffer) => lines.push(...b.toString().split('\n').filter(Boolean)));
    const url = await pg.createDatabase();
    const store = await openStore(url, { logger: createLogger({ json: true, destination: sink }) });
    const { default: pgLib } = await import('pg');
    const admin = new pgLib.Client({ connectionString: pg.url });
    try {
      await sql`SELECT 1`.execute(store.db); // leaves one idle connection in the pool
      await admin.connect();
      const db = new URL(url).pathname.slice(1);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [db]);
      const deadline = Date.now() + 30_000;
      while (!lines.some((l) => l.includes('store_connection_error')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const line = lines.find((l) => l.includes('store_connection_error'));
      assert.ok(line, `a log line about the cut connection (got: ${lines.join(' | ') || 'nothing'})`);
      const rec = JSON.parse(line) as { msg: string; err: string };
      assert.match(rec.msg, new RegExp(`PostgreSQL connection to 127\\.0\\.0\\.1:${pg.port}/${db} failed .*reconnects`));
      assert.ok(!rec.msg.includes('postgres@'), 'no credentials in the log line');
      assert.equal(lines.filter((l) => l.includes('store_connection_error')).length, 1, 'one line per cut connection');
      const { rows } = await sql<{ one: number }>`SELECT 1 AS one`.execute(store.db);
      assert.equal(rows[0]!.one, 1);
    } finally {
      await admin.end().catch(() => {});
      await store.close();
      await pg.stop();
    }
  });
});
