import { createHmac, timingSafeEqual } from 'node:crypto';

// Signed cert events (seed 001 "cert-source provenance validation"). The sender proves it holds
// the cert event token without sending it: it signs the exact body bytes with a timestamp,
//
//   x-cert-event-timestamp: <Unix seconds>
//   x-cert-event-signature: sha256=<hex HMAC-SHA256(token, timestamp + "." + body)>
//
// and the relay accepts a signature once, within CERT_EVENT_WINDOW_MS of its own clock. A token
// sent as a header (the old x-cert-event-token) gave the secret to anyone who saw one request
// (a proxy's log, a debugging dump); a captured signed request can only be replayed, and that
// is refused.

export const CERT_EVENT_WINDOW_MS = 5 * 60_000;
export const TIMESTAMP_HEADER = 'x-cert-event-timestamp';
export const SIGNATURE_HEADER = 'x-cert-event-signature';
/** The old header that carried the token itself; refused with a message that says what to do. */
export const LEGACY_TOKEN_HEADER = 'x-cert-event-token';
const PREFIX = 'sha256=';

const HOW = `sign each request: ${TIMESTAMP_HEADER}: <Unix seconds> and ${SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the cert event token> (\`tunn cert event\` does this)`;

function hmac(token: string, timestamp: string, body: string | Buffer): Buffer {
  return createHmac('sha256', token).update(`${timestamp}.`).update(body).digest();
}

/** The value of x-cert-event-signature for `body` sent at `timestamp` (Unix seconds). */
export function signCertEvent(token: string, timestamp: string, body: string | Buffer): string {
  return PREFIX + hmac(token, timestamp, body).toString('hex');
}

/** Both headers for `body` sent now. */
export function certEventHeaders(token: string, body: string | Buffer, nowMs: number): Record<string, string> {
  const timestamp = String(Math.floor(nowMs / 1000));
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: signCertEvent(token, timestamp, body) };
}

/**
 * Signatures seen within the window, so each is accepted once. Bounded: entries leave when their
 * timestamp falls out of the window; when `max` unexpired signatures are held, new events are
 * refused until some expire (only the token's holder can fill it, and evicting would reopen
 * replay). Per relay process; what holds across restarts and relays is the per-domain signing
 * time in the store (applyCertEventPatch in domains.ts): this guard also covers requests that
 * never reach a domain (unknown domain, bad body).
 */
export class ReplayGuard {
  readonly #seen = new Map<string, number>();
  readonly #windowMs: number;
  readonly #max: number;
  #lastSweep = 0;

  constructor(opts: { windowMs?: number; max?: number } = {}) {
    this.#windowMs = opts.windowMs ?? CERT_EVENT_WINDOW_MS;
    this.#max = opts.max ?? 10_000;
  }

  get size(): number {
    return this.#seen.size;
  }

  /** Records `signature` (valid until `expiresAt`); 'replay' if seen before, 'full' if the set is full. */
  record(signature: string, expiresAt: number, now: number): 'ok' | 'replay' | 'full' {
    if (now - this.#lastSweep >= this.#windowMs || this.#seen.size >= this.#max) this.#sweep(now);
    const until = this.#seen.get(signature);
    if (until !== undefined && until >= now) return 'replay';
    if (this.#seen.size >= this.#max) return 'full';
    this.#seen.set(signature, expiresAt);
    return 'ok';
  }

  #sweep(now: number): void {
    this.#lastSweep = now;
    for (const [sig, until] of this.#seen) if (until < now) this.#seen.delete(sig);
  }
}

export type SignatureCheck = { ok: true } | { ok: false; status: 401 | 409 | 429; message: string };

/** Checks the headers of a cert event against `token`, the clock and the replay guard. */
export function verifyCertEvent(opts: {
  token: string;
  headers: { timestamp?: string; signature?: string; legacyToken?: string };
  body: string | Buffer;
  now: number;
  guard: ReplayGuard;
  windowMs?: number;
}): SignatureCheck {
  const { headers, now } = opts;
  const windowMs = opts.windowMs ?? CERT_EVENT_WINDOW_MS;
  if (headers.legacyToken !== undefined) {
    return { ok: false, status: 401, message: `${LEGACY_TOKEN_HEADER} is not accepted: it sends the secret itself with every request. Drop it and ${HOW}` };
  }
  if (!headers.timestamp || !headers.signature) return { ok: false, status: 401, message: `unsigned cert event: ${HOW}` };
  if (!/^\d{1,12}$/.test(headers.timestamp)) return { ok: false, status: 401, message: `${TIMESTAMP_HEADER} must be the time of signing in Unix seconds, e.g. ${Math.floor(now / 1000)}` };
  // Strict format: Buffer.from(hex) stops at the first bad character, so "…hex…X" would decode.
  const given = /^sha256=[0-9a-f]{64}$/i.test(headers.signature) ? Buffer.from(headers.signature.slice(PREFIX.length), 'hex') : Buffer.alloc(0);
  const expected = hmac(opts.token, headers.timestamp, opts.body);
  // Compare equal-length digests only, in constant time; a malformed value is just "wrong".
  const same = given.length === expected.length && timingSafeEqual(given, expected);
  if (!same) {
    return { ok: false, status: 401, message: `${SIGNATURE_HEADER} does not match: sign "<timestamp>.<the exact body bytes>" with HMAC-SHA256 keyed with the relay's cert event token, hex-encoded after "sha256="` };
  }
  const at = Number(headers.timestamp) * 1000;
  const skew = Math.round((now - at) / 1000);
  if (Math.abs(now - at) > windowMs) {
    return { ok: false, status: 401, message: `${TIMESTAMP_HEADER} is ${Math.abs(skew)} s ${skew > 0 ? 'old' : 'in the future'} (allowed: ${windowMs / 1000} s): sign each event when sending it, and check the sender's clock (NTP)` };
  }
  // Keyed by the digest itself, so another spelling of the same signature is the same event.
  const r = opts.guard.record(expected.toString('hex'), at + windowMs, now);
  if (r === 'replay') return { ok: false, status: 409, message: `this signed cert event was already received: a signature is accepted once; sign each event afresh with the current time` };
  if (r === 'full') return { ok: false, status: 429, message: `too many cert events within ${windowMs / 1000} s; send fewer and retry in a minute` };
  return { ok: true };
}
