import type { Clock } from '../lib/clock.ts';
import { errorMessage, TunnError } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { Logger } from '../lib/logger.ts';
import { normalizeHost } from '../lib/host.ts';
import type { Store } from '../store/store.ts';

// ACME HTTP-01 and TLS-ALPN-01 challenges in a cluster: the CA connects to whichever relay DNS
// gives it, not necessarily the one that placed the order. The relay presenting a challenge
// writes it to the shared database (table `acme_challenges`, migration 0009); every relay
// answers from a copy of the table read at most `cacheMs` ago, and reads it again on a miss, so
// a CA arriving right after the write is still answered. Only key authorizations are stored
// (`token.thumbprint`, public by design: the CA fetches it in the clear); a TLS-ALPN-01
// certificate is built by the relay answering, with its own fresh key, never stored.
// Reads start at most once per `minReadGapMs` (250 ms), whatever the key: in a cluster every
// ClientHello offering acme-tls/1 (any SNI) and every plain-HTTP request for
// /.well-known/acme-challenge/<token> (any host) is a miss that reads, so a flood of made-up names
// or tokens would otherwise read the table back to back. A miss inside the gap waits for the next
// read (shared by every asker), so a CA arriving right after another relay presented is still
// answered, at most that much later.
// Rows expire after `ttlMs` (a relay that crashed mid-order leaves rows behind): every present
// sweeps the expired ones, and reads ignore them.

export type SharedChallengeType = 'http-01' | 'tls-alpn-01';

export interface SharedChallenge {
  type: SharedChallengeType;
  /** The identifier (host name, normalised) the challenge is for. */
  name: string;
  token: string;
  keyAuthorization: string;
}

export interface SharedChallengesOptions {
  store: Store;
  clock: Clock;
  logger: Logger;
  /** How long a row lives unless cleaned up (default 10 min: an order's validation takes seconds to minutes). */
  ttlMs?: number;
  /** How old a read may be and still answer a hit (default 1 s). */
  cacheMs?: number;
  /** The shortest time between the starts of two reads of the table (default 250 ms). */
  minReadGapMs?: number;
}

/** The characters of an ACME token (RFC 8555 8.1: base64url), and a sane length. */
export const ACME_TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

interface Snapshot {
  /** `http-01\0token` and `tls-alpn-01\0name` → the challenges (several per name during overlapping orders). */
  byKey: Map<string, SharedChallenge[]>;
  /** When the read started (clock ms). */
  at: number;
}

const noop = (): void => {};

export class SharedChallenges {
  readonly #o: SharedChallengesOptions;
  #snapshot: Snapshot = { byKey: new Map(), at: -Infinity };
  /** The read in flight, and when it started. */
  #reading: { at: number; done: Promise<Snapshot> } | undefined;
  /** A read asked for while one was in flight that started too early for its asker. */
  #queued: Promise<Snapshot> | undefined;
  #failing = false;
  /** When the last read started (clock ms). */
  #lastReadAt = -Infinity;

  constructor(o: SharedChallengesOptions) {
    this.#o = o;
  }

  /** Writes the challenge (and sweeps expired rows); resolves once any relay reading the table sees it. */
  async present(c: SharedChallenge): Promise<void> {
    const now = this.#o.clock.now();
    const row = { type: c.type, name: normalizeHost(c.name), token: c.token, key_authorization: c.keyAuthorization, created_at: nowIso(now), expires_at: nowIso(now + (this.#o.ttlMs ?? 600_000)) };
    try {
      await this.#o.store.db.deleteFrom('acme_challenges').where('expires_at', '<', nowIso(now)).execute();
      await this.#o.store.db
        .insertInto('acme_challenges')
        .values(row)
        .onConflict((oc) => oc.columns(['type', 'name', 'token']).doUpdateSet({ key_authorization: row.key_authorization, created_at: row.created_at, expires_at: row.expires_at }))
        .execute();
    } catch (err) {
      throw new TunnError('UNAVAILABLE', `cannot write the ACME ${c.type} challenge for ${row.name} to the database the relays share (${errorMessage(err)}): the order fails and is retried; check that this relay reaches its --store database`, { cause: err });
    }
  }

  /** Removes the row present() wrote (only that one: the same type, name and token). */
  async cleanup(c: Omit<SharedChallenge, 'keyAuthorization'>): Promise<void> {
    await this.#o.store.db.deleteFrom('acme_challenges').where('type', '=', c.type).where('name', '=', normalizeHost(c.name)).where('token', '=', c.token).execute();
  }

  /** The challenges for a key from the last read, however old (undefined: none known). */
  peek(type: SharedChallengeType, key: string): SharedChallenge[] | undefined {
    return this.#snapshot.byKey.get(`${type}\0${type === 'tls-alpn-01' ? normalizeHost(key) : key}`);
  }

  /**
   * The challenges for an HTTP-01 token or a TLS-ALPN-01 name: from a read at most `cacheMs`
   * old when it has them, else from a read started now (one at a time, shared by every asker).
   * An unreadable database answers with the last read (and says so in the log once).
   */
  async lookup(type: SharedChallengeType, key: string): Promise<SharedChallenge[] | undefined> {
    const now = this.#o.clock.now();
    const hit = this.peek(type, key);
    if (hit && now - this.#snapshot.at <= (this.#o.cacheMs ?? 1000)) return hit;
    const snap = await this.#readSince(now);
    return snap.byKey.get(`${type}\0${type === 'tls-alpn-01' ? normalizeHost(key) : key}`);
  }

  /** A read of the table that started at or after `since`. */
  #readSince(since: number): Promise<Snapshot> {
    const r = this.#reading;
    const gap = this.#o.minReadGapMs ?? 250;
    if (!r && this.#o.clock.now() - this.#lastReadAt >= gap) return this.#startRead();
    if (r && r.at >= since) return r.done;
    // A read in flight started before this miss (it may not see a row written since), or the last
    // one started under `gap` ago: one more after it and the gap, shared by every asker.
    this.#queued ??= (r ? r.done.then(noop, noop) : Promise.resolve())
      .then(() => new Promise<void>((resolve) => setTimeout(resolve, Math.min(gap, Math.max(0, this.#lastReadAt + gap - this.#o.clock.now())))))
      .then(() => ((this.#queued = undefined), this.#startRead()));
    return this.#queued;
  }

  #startRead(): Promise<Snapshot> {
    const at = this.#o.clock.now();
    this.#lastReadAt = at;
    const done = this.#read(at).finally(() => {
      if (this.#reading?.done === done) this.#reading = undefined;
    });
    this.#reading = { at, done };
    return done;
  }

  async #read(at: number): Promise<Snapshot> {
    try {
      const rows = await this.#o.store.db.selectFrom('acme_challenges').select(['type', 'name', 'token', 'key_authorization']).where('expires_at', '>', nowIso(at)).orderBy('created_at').execute();
      const byKey = new Map<string, SharedChallenge[]>();
      for (const r of rows) {
        const c: SharedChallenge = { type: r.type, name: r.name, token: r.token, keyAuthorization: r.key_authorization };
        const key = `${r.type}\0${r.type === 'tls-alpn-01' ? r.name : r.token}`;
        byKey.set(key, [...(byKey.get(key) ?? []), c]);
      }
      if (this.#failing) this.#o.logger.info({ event: 'acme_challenges_back' }, 'reading the shared ACME challenges again');
      this.#failing = false;
      this.#snapshot = { byKey, at };
    } catch (err) {
      if (!this.#failing) this.#o.logger.warn({ event: 'acme_challenges_stale', err: errorMessage(err) }, 'cannot read the shared ACME challenges: answering the last ones read');
      this.#failing = true;
    }
    return this.#snapshot;
  }
}
