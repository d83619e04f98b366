import type { Clock } from '../lib/clock.ts';
import { TunnError } from '../lib/errors.ts';
import { nowIso, randomId } from '../lib/ids.ts';
import type { Store } from '../store/store.ts';
import { formatAllowEntry, parseAllowEntry, type AllowEntry } from './policy.ts';

// Access that expires. Two ways in:
//   - `tunn 8080 -a bob@client.com --for 2h`: every -a entry of that command becomes a grant
//     that ends 2 h after the tunnel's first registration. The agent sends a random `ref` per
//     run with its registration; the row is keyed (host, ref, entry) and inserted only if
//     missing, so a reconnect or another session re-sending `register` does not extend it.
//   - `tunn grant add <host> <who> --for 2h` on a live tunnel (ref ''); adding again sets a new end.
// Grants are rows in the store, so they survive a relay restart and every relay of a cluster
// sees them. The policy reads them per request through a short cache (filtered by the clock
// at use, so an expiry is exact); the live-revocation sweep cuts connections they no longer allow.

export interface Grant {
  id: string;
  host: string;
  /** The entry as normalised: bob@client.com, @client.com, group:eng, idp:eng. */
  entry: string;
  /** 'for' (from the tunnel's --for) or 'grant' (tunn grant add). */
  via: 'for' | 'grant';
  createdAt: string;
  expiresAt: string;
}

/** The longest grant: a year. Longer access belongs in -a. */
export const MAX_GRANT_SECONDS = 366 * 24 * 3600;

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 };

/** Parses `90s`, `15m`, `2h`, `1d12h`, `1w`; throws INVALID_INPUT with an example. */
export function parseDuration(raw: string, flag = '--for'): number {
  const s = raw.replace(/\s+/g, '').toLowerCase();
  let total = 0;
  if (/^(\d+[smhdw])+$/.test(s)) for (const m of s.matchAll(/(\d+)([smhdw])/g)) total += Number(m[1]) * UNITS[m[2]!]!;
  if (total <= 0) throw new TunnError('INVALID_INPUT', `${flag} "${raw}" is not a duration: use a number and a unit, e.g. 30m, 2h, 1d, 1w`);
  if (total > MAX_GRANT_SECONDS) throw new TunnError('INVALID_INPUT', `${flag} "${raw}" is longer than a year; use -a without ${flag} for lasting access`);
  return total;
}

/** 7200 → "2h", 5400 → "1h30m". */
export function formatSeconds(total: number): string {
  let rest = Math.round(total);
  let out = '';
  for (const [u, n] of [['w', 604800], ['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= n) {
      out += `${Math.floor(rest / n)}${u}`;
      rest %= n;
    }
  }
  return out || '0s';
}

interface Row {
  id: string;
  host: string;
  ref: string;
  entry: string;
  created_at: string;
  expires_at: string;
}

function toGrant(r: Row): Grant {
  return { id: r.id, host: r.host, entry: r.entry, via: r.ref === '' ? 'grant' : 'for', createdAt: r.created_at, expiresAt: r.expires_at };
}

export class GrantService {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #cacheMs: number;
  readonly #cache = new Map<string, { rows: Promise<Row[]>; at: number }>();

  constructor(opts: { store: Store; clock: Clock; cacheMs?: number }) {
    this.#store = opts.store;
    this.#clock = opts.clock;
    this.#cacheMs = opts.cacheMs ?? 1000;
  }
  /** Drops every cached grant list (grants changed on another relay: NOTIFY said so). */
  forgetCached(): void {
    this.#cache.clear();
  }


  /**
   * A tunnel registered with --for: creates the grants of its entries if this registration
   * (`ref`) has none yet; returns when they end (the first registration's time + seconds).
   */
  async registerFor(accountId: string, host: string, ref: string, entries: readonly string[], seconds: number): Promise<number> {
    if (!/^[A-Za-z0-9_-]{8,64}$/.test(ref)) throw new TunnError('INVALID_INPUT', 'malformed --for registration');
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_GRANT_SECONDS) throw new TunnError('INVALID_INPUT', `--for must be between 1 s and a year`);
    const now = this.#clock.now();
    for (const raw of entries) {
      const entry = formatAllowEntry(parseAllowEntry(raw));
      await this.#store.db
        .insertInto('grants')
        .values({ id: randomId(), account_id: accountId, host, ref, entry, created_at: nowIso(now), expires_at: nowIso(now + seconds * 1000) })
        .onConflict((oc) => oc.columns(['host', 'ref', 'entry']).doNothing())
        .execute();
    }
    this.#cache.delete(`${accountId}\0${host}`);
    const rows = await this.#store.db.selectFrom('grants').select('expires_at').where('host', '=', host).where('ref', '=', ref).execute();
    return Math.min(...rows.map((r) => Date.parse(r.expires_at)), now + seconds * 1000);
  }

  /** `tunn grant add`: `who` may reach `host` for `seconds` from now (replacing an earlier end for the same entry). */
  async add(accountId: string, host: string, who: string, seconds: number): Promise<Grant> {
    const entry = formatAllowEntry(parseAllowEntry(who));
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_GRANT_SECONDS) throw new TunnError('INVALID_INPUT', '--for must be between 1 s and a year');
    const now = this.#clock.now();
    const row: Row = { id: randomId(), host, ref: '', entry, created_at: nowIso(now), expires_at: nowIso(now + seconds * 1000) };
    await this.#store.db
      .insertInto('grants')
      .values({ ...row, account_id: accountId })
      .onConflict((oc) => oc.columns(['host', 'ref', 'entry']).doUpdateSet({ created_at: row.created_at, expires_at: row.expires_at }))
      .execute();
    this.#cache.delete(`${accountId}\0${host}`);
    const saved = await this.#store.db.selectFrom('grants').selectAll().where('host', '=', host).where('ref', '=', '').where('entry', '=', entry).executeTakeFirstOrThrow();
    return toGrant(saved);
  }

  /** The account's grants that have not ended, optionally for one host; soonest end first. */
  async list(accountId: string, host?: string): Promise<Grant[]> {
    let q = this.#store.db.selectFrom('grants').selectAll().where('account_id', '=', accountId).where('expires_at', '>', nowIso(this.#clock.now()));
    if (host) q = q.where('host', '=', host);
    const rows = await q.orderBy('expires_at').execute();
    return rows.map(toGrant);
  }

  /** Ends grants now: by id, or every grant of `who` on `host`. Returns how many ended; NOT_FOUND when none. */
  async remove(accountId: string, target: { id: string } | { host: string; who: string }): Promise<number> {
    let q = this.#store.db.deleteFrom('grants').where('account_id', '=', accountId);
    let host: string | undefined;
    if ('id' in target) q = q.where('id', '=', target.id);
    else {
      host = target.host;
      q = q.where('host', '=', target.host).where('entry', '=', formatAllowEntry(parseAllowEntry(target.who)));
    }
    const res = await q.executeTakeFirst();
    const n = Number(res.numDeletedRows);
    for (const k of [...this.#cache.keys()]) if (!host || k.endsWith(`\0${host}`)) this.#cache.delete(k);
    if (n === 0) throw new TunnError('NOT_FOUND', 'no such grant: see them with `tunn grant list`');
    return n;
  }

  /**
   * The entries that let visitors into `host` right now: grants added with `tunn grant add`,
   * and the `--for` grants of the registration `ref` (others belong to earlier runs).
   */
  async live(accountId: string, host: string, ref: string | undefined): Promise<AllowEntry[]> {
    const key = `${accountId}\0${host}`;
    const now = this.#clock.now();
    let hit = this.#cache.get(key);
    if (!hit || hit.at + this.#cacheMs <= now) {
      const rows = this.#store.db.selectFrom('grants').select(['id', 'host', 'ref', 'entry', 'created_at', 'expires_at']).where('account_id', '=', accountId).where('host', '=', host).where('expires_at', '>', nowIso(now)).execute();
      hit = { rows, at: now };
      this.#cache.set(key, hit);
      rows.catch(() => this.#cache.delete(key));
      if (this.#cache.size > 10_000) this.#cache.clear();
    }
    const out: AllowEntry[] = [];
    for (const r of await hit.rows) {
      if (Date.parse(r.expires_at) <= now) continue;
      if (r.ref !== '' && r.ref !== ref) continue;
      out.push(parseAllowEntry(r.entry));
    }
    return out;
  }
}
