import { systemClock, type Clock } from '../lib/clock.ts';
import { nowIso } from '../lib/ids.ts';
import type { TlsStatus } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import type { AlertHook } from '../certs/alerts.ts';
import { verifyCertEvent, type ReplayGuard } from '../certs/cert-event-signature.ts';
import { recordCertEvent } from '../certs/events.ts';
import { normalizeHost } from '../lib/host.ts';
import { applyCertEventPatch, domainByName, type DomainTlsPatch } from './records.ts';

// `POST /v1/domains/cert-events` (seed 001): an external certificate manager reports a
// domain's certificate state, in a request signed with the shared cert event token
// (certs/cert-event-signature.ts: HMAC over timestamp and body, a replay window). Mounted by the
// API as: const r = await handleCertEvent(deps, headers, await c.req.text()); return c.json(r.body, r.status)

export interface CertEventDeps {
  store: Store;
  /** The configured token; undefined disables the endpoint (404). */
  token: string | undefined;
  /** Signatures already accepted; one guard for the life of the endpoint. */
  replay: ReplayGuard;
  clock?: Clock;
  onAlert?: AlertHook;
}

/** The request headers the endpoint reads. */
export interface CertEventHeaders {
  timestamp?: string;
  signature?: string;
  /** The old x-cert-event-token header, refused. */
  legacyToken?: string;
}

export interface CertEventResponse {
  status: 202 | 400 | 401 | 404 | 409 | 429;
  body: Record<string, unknown>;
}

const STATUSES: readonly TlsStatus[] = ['pending_issue', 'pending_route', 'issued', 'expiring', 'tls_error', 'passthrough_unverified'];

/**
 * Body: { domain, status (one of the lifecycle states), certificate_ref?, not_after? (ISO),
 * error?, message? }. Updates the domain's lifecycle columns, appends an `external` event, and
 * alerts on tls_error.
 */
export async function handleCertEvent(deps: CertEventDeps, headers: CertEventHeaders, rawBody: string): Promise<CertEventResponse> {
  if (!deps.token) return { status: 404, body: { error: 'not_found', message: 'the cert-events endpoint is disabled on this relay (no cert event token configured: --cert-event-token-file)' } };
  const now = (deps.clock ?? systemClock).now();
  const signed = verifyCertEvent({ token: deps.token, headers, body: rawBody, now, guard: deps.replay });
  if (!signed.ok) return { status: signed.status, body: { error: signed.status === 409 ? 'replayed' : signed.status === 429 ? 'rate_limited' : 'unauthorized', message: signed.message } };
  let body: unknown;
  try {
    body = JSON.parse(rawBody);
  } catch {
    return { status: 400, body: { error: 'invalid_input', message: 'the body must be a JSON object: { "domain", "status", … }' } };
  }
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const errors: string[] = [];
  const domain = typeof b.domain === 'string' ? normalizeHost(b.domain.trim()) : '';
  if (!domain) errors.push('domain: required string');
  const status = b.status as TlsStatus;
  if (!STATUSES.includes(status)) errors.push(`status: one of ${STATUSES.join(', ')}`);
  const notAfter = b.not_after === undefined ? undefined : Date.parse(String(b.not_after));
  if (notAfter !== undefined && !Number.isFinite(notAfter)) errors.push('not_after: an ISO 8601 time');
  for (const k of ['certificate_ref', 'error', 'message'] as const) if (b[k] !== undefined && typeof b[k] !== 'string') errors.push(`${k}: string`);
  if (errors.length) return { status: 400, body: { error: 'invalid_input', message: errors.join('; '), errors } };
  const row = await domainByName(deps.store, domain);
  if (!row) return { status: 404, body: { error: 'not_found', message: `${domain} is not a registered domain` } };
  const patch: DomainTlsPatch = {
    tls_status: status,
    tls_last_checked_at: nowIso(now),
    tls_last_error: status === 'tls_error' ? String(b.error ?? b.message ?? 'reported by the external certificate manager') : null,
  };
  if (notAfter !== undefined) patch.tls_not_after = nowIso(notAfter);
  if (typeof b.certificate_ref === 'string') patch.certificate_ref = b.certificate_ref;
  // Verified above: the signing time in Unix seconds. Per domain in the store, so a replay is
  // refused after a restart and on every relay, and an older event never overwrites a newer one.
  const signedAt = Number(headers.timestamp);
  if (!(await applyCertEventPatch(deps.store, row.domain, patch, signedAt))) {
    return {
      status: 409,
      body: { error: 'replayed', message: `a cert event for ${row.domain} signed at ${signedAt} or later was already applied: events apply in order, once each; sign each event afresh with the current time (at most one per second per domain)` },
    };
  }
  const message = `external certificate manager reports ${status}${b.message ? `: ${String(b.message)}` : ''}${patch.tls_last_error ? `: ${patch.tls_last_error}` : ''}`;
  await recordCertEvent(deps.store, { domain: row.domain, kind: 'external', message, detail: { ...b } }, now);
  if (status === 'tls_error') await deps.onAlert?.({ kind: 'external_error', domain: row.domain, message, at: nowIso(now) });
  return { status: 202, body: { ok: true, domain: row.domain, tls_status: status } };
}
