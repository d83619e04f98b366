import { Kysely, Migrator, PostgresDialect, SqliteDialect, type MigrationProvider, type PostgresPool, type PostgresPoolClient, type SqliteDatabase } from 'kysely';
import { mkdirSync } from 'node:fs';
import type { DatabaseSync } from 'node:sqlite';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, isTunnError, TunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { ensurePrivateFile, tightenIfExists } from '../lib/private-files.ts';
import { migrations } from './migrations.ts';
import type { Database } from './schema.ts';
import { openSqlite } from './sqlite-driver.ts';
import { mapStoreErrors } from './unavailable.ts';

export type Dialect = 'sqlite' | 'postgres';

/** Time limits on PostgreSQL (defaults suit a relay; tests shorten them). */
export interface StoreTimeouts {
  /** Opening a connection: 10 s. */
  connectMs?: number;
  /** Waiting for one query's answer: 30 s. */
  queryMs?: number;
}

/** How the store is opened: PostgreSQL time limits, and where connection faults are logged. */
export interface StoreOptions extends StoreTimeouts {
  /** Connection faults the pool recovers from (an idle connection cut) are logged here, never dropped. */
  logger?: Logger;
}

export interface Store {
  readonly db: Kysely<Database>;
  readonly dialect: Dialect;
  close(): Promise<void>;
}

/**
 * Opens the store and brings its schema up to date. `url` is a SQLite file path (or
 * `sqlite:PATH`, or `:memory:`) or a `postgres://` URL.
 */
export async function openStore(url: string, timeouts: StoreOptions = {}): Promise<Store> {
  let db: Kysely<Database>;
  let dialect: Dialect;
  let sqliteRaw: DatabaseSync | undefined;
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { default: pg } = await import('pg');
    // Without limits a half-open connection (a server gone without a FIN, a firewall dropping
    // state) waits forever: a query that never answers held the revocation sweep and, one by
    // one, the pool. Connects and queries are time-boxed, and TCP keepalive finds dead peers
    // of idle pooled connections.
    const pool = new pg.Pool({
      connectionString: url,
      max: 10,
      connectionTimeoutMillis: timeouts.connectMs ?? 10_000,
      query_timeout: timeouts.queryMs ?? 30_000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    // An idle pooled connection that breaks (server restart, failover, network) emits 'error'
    // on the pool; unhandled, that would crash the relay. The pool drops the client and the
    // next query opens a new connection. Said in the log, so an operator sees a flapping database.
    const where = postgresTarget(url);
    // A cut connection is reported by the pool (idle) and by its client (our listener below,
    // kept for the client's life): one line per error.
    const logged = new WeakSet<Error>();
    const onConnectionError = (err: Error): void => {
      if (logged.has(err)) return;
      logged.add(err);
      timeouts.logger?.warn({ event: 'store_connection_error', err: errorMessage(err) }, `a PostgreSQL connection to ${where} failed (the pool drops it and reconnects on the next query): ${errorMessage(err)}`);
    };
    pool.on('error', onConnectionError);
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: unavailableAware(pool, onConnectionError) }) });
    dialect = 'postgres';
  } else {
    const path = url.replace(/^sqlite:/, '');
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // The database holds sessions and sealed keys: 0600 whatever the dir's mode and umask
      // (SQLite gives -wal and -shm the database file's mode; older files are tightened too).
      try {
        ensurePrivateFile(path);
        for (const side of ['-wal', '-shm', '-journal']) tightenIfExists(path + side);
      } catch (err) {
        throw new TunnError('UNAVAILABLE', `opening the SQLite store ${path}: ${errorMessage(err)}; check that its directory exists and is writable by this user`, { cause: err });
      }
    }
    const { database, raw } = mapStoreErrors(() => openSqlite(path));
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: unavailableAwareSqlite(database) }) });
    dialect = 'sqlite';
    sqliteRaw = raw;
  }
  const provider: MigrationProvider = { getMigrations: async () => migrations };
  // Kysely's SQLite adapter takes no migration lock (it assumes one connection) and runs DDL
  // outside a transaction, so two processes opening a new file at once (a relay and
  // `tunn relay token create`) both created the tables and one failed. Migrate SQLite inside
  // BEGIN IMMEDIATE: the other process waits and then finds the schema up to date, and a
  // failed migration leaves nothing behind. PostgreSQL gets Kysely's advisory lock.
  if (sqliteRaw) await mapStoreErrors(() => beginImmediate(sqliteRaw));
  let { error } = await new Migrator({ db, provider }).migrateToLatest();
  if (sqliteRaw) {
    try {
      sqliteRaw.exec(error ? 'ROLLBACK' : 'COMMIT');
    } catch (err) {
      error ??= err;
    }
  }
  if (error) {
    await db.destroy();
    throw new TunnError('UNAVAILABLE', `migrating the ${dialect} store: ${(error as Error).message}`, { cause: error });
  }
  return { db, dialect, close: () => db.destroy() };
}

/**
 * The pool as Kysely sees it, with connection faults (PostgreSQL restarting or unreachable)
 * turned into UNAVAILABLE errors. A checked-out client has no 'error' listener of the pool's:
 * one is added, or a connection cut between two queries of a transaction would crash the
 * relay; the next query on that client then fails (and the pool drops it on release).
 */
function unavailableAware(pool: PostgresPool, onClientError: (err: Error) => void): PostgresPool {
  const guarded = new WeakSet<object>();
  return {
    connect: () =>
      mapStoreErrors(async () => {
        const client = await pool.connect();
        if (!guarded.has(client)) {
          guarded.add(client);
          (client as unknown as { on(ev: 'error', fn: (err: Error) => void): void }).on('error', onClientError);
        }
        // A client whose query timed out or whose connection failed may still have that query
        // in flight: it is destroyed on release rather than handed to the next caller.
        let broken: Error | undefined;
        const query = ((...args: [string, ReadonlyArray<unknown>]) =>
          mapStoreErrors(() => client.query(...args)).catch((err: unknown) => {
            if (isTunnError(err, 'UNAVAILABLE')) broken = err;
            throw err;
          })) as PostgresPoolClient['query'];
        // Kysely's PostgresPoolClient types release() without pg's optional argument.
        const release = client.release as unknown as (destroy?: Error) => void;
        return { query, release: () => release.call(client, broken) };
      }),
    end: () => pool.end(),
  };
}

/** host:port/database of a PostgreSQL URL, without the credentials (for log lines). */
export function postgresTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}${u.port ? ':' + u.port : ''}${u.pathname && u.pathname !== '/' ? u.pathname : ''}`;
  } catch {
    return 'the PostgreSQL server';
  }
}

/** The SQLite database as Kysely sees it, with a full or failing disk turned into UNAVAILABLE errors. */
function unavailableAwareSqlite(d: SqliteDatabase): SqliteDatabase {
  return {
    close: () => d.close(),
    prepare(sql) {
      const st = mapStoreErrors(() => d.prepare(sql));
      return {
        reader: st.reader,
        all: (params) => mapStoreErrors(() => st.all(params)),
        run: (params) => mapStoreErrors(() => st.run(params)),
        iterate: (params) => mapStoreErrors(() => st.iterate(params)),
      };
    },
  };
}

/**
 * BEGIN IMMEDIATE without blocking the event loop: busy_timeout would wait synchronously,
 * and another connection of this same process holding the lock could then never finish.
 */
async function beginImmediate(raw: DatabaseSync, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  raw.exec('PRAGMA busy_timeout = 0');
  try {
    for (;;) {
      try {
        raw.exec('BEGIN IMMEDIATE');
        return;
      } catch (err) {
        if (Date.now() > end || !/locked|busy/i.test((err as Error).message)) throw err;
        await sleep(20);
      }
    }
  } finally {
    raw.exec('PRAGMA busy_timeout = 5000');
  }
}
