import { DatabaseSync } from 'node:sqlite';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

// Kysely's SqliteDialect was written for better-sqlite3. This is the subset of that driver
// Kysely needs, built on node:sqlite (so the default install has no native addon to compile).

export function openSqlite(path: string): { database: SqliteDatabase; raw: DatabaseSync } {
  const raw = new DatabaseSync(path);
  // busy_timeout first: switching a new file to WAL needs a lock another process may hold.
  raw.exec('PRAGMA busy_timeout = 5000');
  raw.exec('PRAGMA journal_mode = WAL');
  raw.exec('PRAGMA foreign_keys = ON');
  raw.exec('PRAGMA synchronous = NORMAL');
  const database: SqliteDatabase = {
    close: () => raw.close(),
    prepare(sql: string): SqliteStatement {
      const stmt = raw.prepare(sql);
      const reader = stmt.columns().length > 0;
      return {
        reader,
        all: (params: ReadonlyArray<unknown>) => stmt.all(...(params as never[])) as unknown[],
        run: (params: ReadonlyArray<unknown>) => {
          const r = stmt.run(...(params as never[]));
          return { changes: Number(r.changes), lastInsertRowid: Number(r.lastInsertRowid) };
        },
        iterate: (params: ReadonlyArray<unknown>) => stmt.iterate(...(params as never[])) as IterableIterator<unknown>,
      };
    },
  };
  return { database, raw };
}
