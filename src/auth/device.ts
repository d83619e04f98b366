import { randomInt } from 'node:crypto';
import type { Clock } from '../lib/clock.ts';
import { nowIso, randomToken } from '../lib/ids.ts';
import type { Store } from '../store/store.ts';
import { hashSecret } from './sessions.ts';
import type { TokenService } from './tokens.ts';

// Device authorisation for `tunn login` (RFC 8628, as `gh auth login` does it):
//   CLI:  POST /v1/auth/device            → device_code, user_code, verification_uri
//   user: opens the URI on the relay, signs in, types the code shown in the terminal, approves
// No verification_uri_complete (optional in RFC 8628 §3.2): a code that arrives in a link is
// how device-code phishing works (§5.4), so the relay only takes one typed in.
//   CLI:  POST /v1/auth/device/token      → authorization_pending | slow_down | expired_token |
//                                            access_denied | the token
// The CLI receives a personal access token (kind 'pat', no expiry, labelled "tunn login:
// <client>"): one credential for the API and the agent, listed by `tunn token list` and
// revoked by `tunn logout` or `tunn token revoke`. No refresh token: a PAT revocable by jti
// gives the same control with one moving part fewer.

export const DEVICE_PATH = '/device';
const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ'; // no vowels (no words), no look-alikes
const EXPIRES_IN = 600;
const INTERVAL = 5;

export interface DeviceStart {
  device_code: string;
  user_code: string;
  verification_uri: string;
  interval: number;
  expires_in: number;
}

export type DevicePoll =
  | { ok: true; token: string; email: string; accountId: string }
  | { ok: false; error: 'authorization_pending' | 'slow_down' | 'expired_token' | 'access_denied' | 'invalid_grant'; interval?: number };

export interface PendingDevice {
  userCode: string;
  clientName: string;
  ip: string;
  createdAt: string;
}

/** "bcdf ghjk", "BCDF-GHJK" → "BCDF-GHJK"; undefined when it cannot be a user code. */
export function normaliseUserCode(raw: string | undefined | null): string | undefined {
  if (!raw) return undefined;
  const s = raw.toUpperCase().replace(/[^A-Z]/g, '');
  if (s.length !== 8 || [...s].some((c) => !USER_CODE_ALPHABET.includes(c))) return undefined;
  return `${s.slice(0, 4)}-${s.slice(4)}`;
}

export class DeviceLogin {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #tokens: TokenService;
  readonly #relayUrl: string;

  constructor(opts: { store: Store; clock: Clock; tokens: TokenService; relayUrl: string }) {
    this.#store = opts.store;
    this.#clock = opts.clock;
    this.#tokens = opts.tokens;
    this.#relayUrl = opts.relayUrl;
  }

  async start(opts: { clientName?: string; ip?: string } = {}): Promise<DeviceStart> {
    const deviceCode = randomToken(32);
    const now = this.#clock.now();
    for (let attempt = 0; ; attempt++) {
      let raw = '';
      for (let i = 0; i < 8; i++) raw += USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)];
      const userCode = normaliseUserCode(raw)!;
      try {
        await this.#store.db
          .insertInto('device_codes')
          .values({
            id: hashSecret(deviceCode),
            user_code: userCode,
            client_name: (opts.clientName ?? 'tunn CLI').slice(0, 100),
            ip: opts.ip ?? '',
            status: 'pending',
            account_id: null,
            email: null,
            interval_s: INTERVAL,
            created_at: nowIso(now),
            expires_at: nowIso(now + EXPIRES_IN * 1000),
            last_poll_at: null,
          })
          .execute();
        const uri = `${this.#relayUrl}${DEVICE_PATH}`;
        return { device_code: deviceCode, user_code: userCode, verification_uri: uri, interval: INTERVAL, expires_in: EXPIRES_IN };
      } catch (err) {
        if (attempt >= 3) throw err; // a user-code collision is rare; a repeated failure is not one
      }
    }
  }

  /** The pending request for a user code, for the confirmation page. */
  async pending(userCodeRaw: string | undefined | null): Promise<PendingDevice | undefined> {
    const userCode = normaliseUserCode(userCodeRaw);
    if (!userCode) return undefined;
    const r = await this.#store.db.selectFrom('device_codes').selectAll().where('user_code', '=', userCode).where('status', '=', 'pending').where('expires_at', '>', nowIso(this.#clock.now())).executeTakeFirst();
    return r ? { userCode, clientName: r.client_name, ip: r.ip, createdAt: r.created_at } : undefined;
  }

  /** Approves or denies a pending code; false when there is no such pending, unexpired code. */
  async decide(userCodeRaw: string | undefined | null, decision: 'approve' | 'deny', who: { accountId: string; email: string }): Promise<boolean> {
    const userCode = normaliseUserCode(userCodeRaw);
    if (!userCode) return false;
    const res = await this.#store.db
      .updateTable('device_codes')
      .set(decision === 'approve' ? { status: 'approved', account_id: who.accountId, email: who.email } : { status: 'denied' })
      .where('user_code', '=', userCode)
      .where('status', '=', 'pending')
      .where('expires_at', '>', nowIso(this.#clock.now()))
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  /** One poll by the CLI (RFC 8628 §3.4–3.5). */
  async poll(deviceCode: string | undefined | null): Promise<DevicePoll> {
    if (!deviceCode) return { ok: false, error: 'invalid_grant' };
    const id = hashSecret(deviceCode);
    const r = await this.#store.db.selectFrom('device_codes').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r || r.status === 'consumed') return { ok: false, error: 'invalid_grant' };
    const now = this.#clock.now();
    if (Date.parse(r.expires_at) <= now) return { ok: false, error: 'expired_token' };
    if (r.status === 'denied') return { ok: false, error: 'access_denied' };
    if (r.status === 'pending') {
      const tooSoon = r.last_poll_at !== null && now - Date.parse(r.last_poll_at) < r.interval_s * 1000;
      const interval = tooSoon ? r.interval_s + 5 : r.interval_s;
      await this.#store.db.updateTable('device_codes').set({ last_poll_at: nowIso(now), interval_s: interval }).where('id', '=', id).execute();
      return tooSoon ? { ok: false, error: 'slow_down', interval } : { ok: false, error: 'authorization_pending' };
    }
    // approved: hand out the token exactly once.
    const res = await this.#store.db.updateTable('device_codes').set({ status: 'consumed' }).where('id', '=', id).where('status', '=', 'approved').executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1 || !r.account_id || !r.email) return { ok: false, error: 'invalid_grant' };
    const { token } = await this.#tokens.issue({ accountId: r.account_id, kind: 'pat', email: r.email, label: `tunn login: ${r.client_name}` });
    return { ok: true, token, email: r.email, accountId: r.account_id };
  }
}
