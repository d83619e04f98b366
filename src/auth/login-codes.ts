import type { Clock } from '../lib/clock.ts';
import { nowIso, randomToken } from '../lib/ids.ts';
import type { Store } from '../store/store.ts';
import { hashSecret, normaliseHost } from './sessions.ts';

// One-time codes: cross-domain hand-off codes (bound to one tunnel host, valid for seconds),
// magic-link nonces and OIDC login state. Only the SHA-256 of a code is stored; consuming is
// one conditional UPDATE, so a code is good exactly once even under concurrent use.

export type LoginCodePurpose = 'handoff' | 'magic' | 'oidc';

export interface LoginCode {
  purpose: LoginCodePurpose;
  host: string;
  accountId: string | null;
  email: string | null;
  sessionId: string | null;
  data: Record<string, unknown>;
}

export class LoginCodes {
  readonly #store: Store;
  readonly #clock: Clock;

  constructor(opts: { store: Store; clock: Clock }) {
    this.#store = opts.store;
    this.#clock = opts.clock;
  }

  async issue(opts: { purpose: LoginCodePurpose; host: string; ttlSeconds: number; accountId?: string; email?: string; sessionId?: string; data?: Record<string, unknown> }): Promise<string> {
    const code = randomToken(32);
    const now = this.#clock.now();
    await this.#store.db
      .insertInto('login_codes')
      .values({
        id: hashSecret(code),
        purpose: opts.purpose,
        host: normaliseHost(opts.host),
        account_id: opts.accountId ?? null,
        email: opts.email ?? null,
        session_id: opts.sessionId ?? null,
        data: JSON.stringify(opts.data ?? {}),
        created_at: nowIso(now),
        expires_at: nowIso(now + opts.ttlSeconds * 1000),
        used_at: null,
      })
      .execute();
    // Keep the table small: drop codes that expired more than an hour ago.
    await this.#store.db.deleteFrom('login_codes').where('expires_at', '<', nowIso(now - 3600_000)).execute();
    return code;
  }

  /** The code if it is still good, without using it up (a confirmation page shows it first). */
  async peek(code: string | undefined, purpose: LoginCodePurpose): Promise<LoginCode | undefined> {
    if (!code || !/^[A-Za-z0-9_-]{43}$/.test(code)) return undefined;
    const r = await this.#store.db
      .selectFrom('login_codes')
      .selectAll()
      .where('id', '=', hashSecret(code))
      .where('purpose', '=', purpose)
      .where('used_at', 'is', null)
      .where('expires_at', '>', nowIso(this.#clock.now()))
      .executeTakeFirst();
    return r ? { purpose, host: r.host, accountId: r.account_id, email: r.email, sessionId: r.session_id, data: JSON.parse(r.data) as Record<string, unknown> } : undefined;
  }

  /**
   * Marks the code used and returns it; undefined when it is unknown, used, expired, of
   * another purpose or (when `host` is given) bound to another host.
   */
  async consume(code: string | undefined, purpose: LoginCodePurpose, host?: string): Promise<LoginCode | undefined> {
    if (!code || !/^[A-Za-z0-9_-]{43}$/.test(code)) return undefined;
    const id = hashSecret(code);
    const now = nowIso(this.#clock.now());
    let q = this.#store.db.updateTable('login_codes').set({ used_at: now }).where('id', '=', id).where('purpose', '=', purpose).where('used_at', 'is', null).where('expires_at', '>', now);
    if (host !== undefined) q = q.where('host', '=', normaliseHost(host));
    const res = await q.executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return undefined;
    const r = await this.#store.db.selectFrom('login_codes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    return { purpose, host: r.host, accountId: r.account_id, email: r.email, sessionId: r.session_id, data: JSON.parse(r.data) as Record<string, unknown> };
  }
}
