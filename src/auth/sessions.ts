import { createHash } from 'node:crypto';
import type { Clock } from '../lib/clock.ts';
import { nowIso, randomToken } from '../lib/ids.ts';
import type { Store } from '../store/store.ts';

// Browser sessions live in the store (they survive a relay restart and can be revoked). The
// cookie carries 32 random bytes; the store keeps only their SHA-256, so a database dump
// does not hold usable cookies, and a tampered cookie simply matches no row. Each session is
// bound to the host it was issued for: a cookie copied to another host is refused.

export interface Session {
  id: string;
  parentId: string | null;
  accountId: string;
  email: string;
  host: string;
  expiresAt: number;
}

const COOKIE_VALUE = /^[A-Za-z0-9_-]{43}$/;

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url');
}

export function normaliseHost(host: string): string {
  return host.trim().toLowerCase().replace(/\.(?=:\d+$|$)/, '');
}

export class SessionService {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly ttlSeconds: number;

  constructor(opts: { store: Store; clock: Clock; ttlSeconds?: number }) {
    this.#store = opts.store;
    this.#clock = opts.clock;
    this.ttlSeconds = opts.ttlSeconds ?? 7 * 24 * 3600;
  }

  /**
   * Creates a session for `host`. A tunnel-host session passes the relay session it comes
   * from as `parent`; it then expires with it and is revoked with it.
   */
  async create(opts: { accountId: string; email: string; host: string; ip?: string; userAgent?: string; parent?: Session }): Promise<{ cookieValue: string; session: Session }> {
    const cookieValue = randomToken(32);
    const now = this.#clock.now();
    const expiresAt = opts.parent ? opts.parent.expiresAt : now + this.ttlSeconds * 1000;
    const session: Session = { id: hashSecret(cookieValue), parentId: opts.parent ? (opts.parent.parentId ?? opts.parent.id) : null, accountId: opts.accountId, email: opts.email, host: normaliseHost(opts.host), expiresAt };
    await this.#store.db
      .insertInto('sessions')
      .values({
        id: session.id,
        parent_id: session.parentId,
        account_id: session.accountId,
        email: session.email,
        host: session.host,
        created_at: nowIso(now),
        expires_at: nowIso(expiresAt),
        revoked_at: null,
        ip: opts.ip ?? '',
        user_agent: (opts.userAgent ?? '').slice(0, 200),
      })
      .execute();
    return { cookieValue, session };
  }

  /** The live session for a cookie value on `host`; undefined when unknown, tampered, expired, revoked or for another host. */
  async lookup(cookieValue: string | undefined, host: string): Promise<Session | undefined> {
    if (!cookieValue || !COOKIE_VALUE.test(cookieValue)) return undefined;
    const s = await this.byId(hashSecret(cookieValue));
    return s && s.host === normaliseHost(host) ? s : undefined;
  }

  /** The live session by id (any host). */
  async byId(id: string): Promise<Session | undefined> {
    const r = await this.#store.db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r || r.revoked_at !== null) return undefined;
    const expiresAt = Date.parse(r.expires_at);
    if (expiresAt <= this.#clock.now()) return undefined;
    return { id: r.id, parentId: r.parent_id, accountId: r.account_id, email: r.email, host: r.host, expiresAt };
  }

  /**
   * Whether a session for `host` was ever handed off from `session`'s family (live or not):
   * the record that the visitor agreed to that hand-off.
   */
  async hasChild(session: Pick<Session, 'id' | 'parentId'>, host: string): Promise<boolean> {
    const r = await this.#store.db
      .selectFrom('sessions')
      .select('id')
      .where('parent_id', '=', session.parentId ?? session.id)
      .where('host', '=', normaliseHost(host))
      .limit(1)
      .executeTakeFirst();
    return r !== undefined;
  }

  /** Revokes the session's whole family: the relay session and every tunnel-host session handed off from it. */
  async revokeFamily(session: Pick<Session, 'id' | 'parentId'>): Promise<void> {
    const root = session.parentId ?? session.id;
    await this.#store.db
      .updateTable('sessions')
      .set({ revoked_at: nowIso(this.#clock.now()) })
      .where((eb) => eb.or([eb('id', '=', root), eb('parent_id', '=', root)]))
      .where('revoked_at', 'is', null)
      .execute();
    // The sign-in's IdP groups and the provider tokens kept to confirm them go with it.
    await this.#store.db.deleteFrom('idp_session_groups').where('session_id', '=', root).execute();
  }

  /** Revokes every session of the account (all browsers, all hosts). */
  async revokeAccount(accountId: string): Promise<number> {
    const res = await this.#store.db.updateTable('sessions').set({ revoked_at: nowIso(this.#clock.now()) }).where('account_id', '=', accountId).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(res.numUpdatedRows);
  }
}
