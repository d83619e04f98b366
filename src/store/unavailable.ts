import { TunnError } from '../lib/errors.ts';

// Database faults that are not the caller's doing (PostgreSQL restarting or unreachable, the
// disk under SQLite full or failing) become one coded error, UNAVAILABLE, with a message that
// says what is wrong and what to do. Everything above the store then answers them the same
// way: 503 from the API and the tunnel gate, a non-fatal error (retried) for an agent, a
// clear line from an operator command. Other errors (constraints, bad SQL) pass unchanged.

// SQLite primary result codes (the low byte of an extended code).
const SQLITE_READONLY = 8;
const SQLITE_IOERR = 10;
const SQLITE_FULL = 13;
const SQLITE_CANTOPEN = 14;

// Node socket errors and pg's own messages for a connection that cannot be made or was cut.
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
const PG_LOST = /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|Client was closed|Query read timeout)/;

/** The UNAVAILABLE error for a database fault, or undefined for any other error. */
export function storeUnavailable(err: unknown): TunnError | undefined {
  if (!(err instanceof Error) || err instanceof TunnError) return undefined;
  const e = err as Error & { code?: unknown; errcode?: unknown };
  if (e.code === 'ERR_SQLITE_ERROR' && typeof e.errcode === 'number') {
    const primary = e.errcode & 0xff;
    if (primary === SQLITE_FULL || (primary === SQLITE_IOERR && /full|space/i.test(e.message))) {
      return new TunnError('UNAVAILABLE', `the relay cannot save data: the disk holding its database is full (${e.message}); try again later (relay operator: free space in the data dir)`, { cause: err });
    }
    if (primary === SQLITE_IOERR || primary === SQLITE_READONLY || primary === SQLITE_CANTOPEN) {
      return new TunnError('UNAVAILABLE', `the relay cannot use its database file (${e.message}); try again later (relay operator: check the data dir's disk and permissions)`, { cause: err });
    }
    return undefined;
  }
  const code = typeof e.code === 'string' ? e.code : '';
  // SQLSTATE class 08 (connection exception), 57P01-57P03 (shut down, crashed, starting up),
  // 53 (insufficient resources: disk full, too many connections).
  if (NET_CODES.has(code) || PG_LOST.test(e.message) || /^(08|57P0[123]|53)/.test(code)) {
    const why = code === '53100' ? 'is out of disk space' : code === '53300' ? 'has no free connections' : 'is unreachable';
    return new TunnError('UNAVAILABLE', `the relay's database ${why} (${e.message}); try again shortly: the relay reconnects by itself`, { cause: err });
  }
  return undefined;
}

/** Runs `fn`, turning a database fault into UNAVAILABLE. */
export function mapStoreErrors<T>(fn: () => T): T {
  try {
    const out = fn();
    if (out instanceof Promise) return out.catch(rethrowMapped) as T;
    return out;
  } catch (err) {
    return rethrowMapped(err);
  }
}

function rethrowMapped(err: unknown): never {
  throw storeUnavailable(err) ?? err;
}
