import { timingSafeEqual, createHash } from 'node:crypto';
import { systemClock, type Clock } from '../lib/clock.ts';
import { nowIso } from '../lib/ids.ts';
import type { TlsStatus } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import type { AlertHook } from './alerts.ts';
import { domainByName, updateDomainTls, type DomainTlsPatch } from './domains.ts';
import { recordCertEvent } from './events.ts';

// `POST /v1/domains/cert-events` (seed 001): an external certificate manager reports a
// domain's certificate state, authenticated by the shared `x-cert-event-token`. Mounted by the
// API as: const r = await handleCertEvent(deps, c.req.header('x-cert-event-token'), await c.req.json()); return c.json(r.body, r.status)

export interface CertEventDeps {
  store: Store;
  /** The configured token; undefined disables the endpoint (404). */
  token: string | undefined;
  clock?: Clock;
  onAlert?: AlertHook;
}

export interface CertEventResponse {
  status: 202 | 400 | 401 | 404;
  body: Record<string, unknown>;
}

const STATUSES: readonly TlsStatus[] = ['pending_issue', 'pending_route', 'issued', 'expiring', 'tls_error', 'passthrough_unverified'];

function sameToken(a: string, b: string): boolean {
  // Compare digests so neither the length nor the content leaks through timing.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/**
 * Body: { domain, status (one of the lifecycle states), certificate_ref?, not_after? (ISO),
 * error?, message? }. Updates the domain's lifecycle columns, appends an `external` event, and
 * alerts on tls_error.
 */
export async function handleCertEvent(deps: CertEventDeps, tokenHeader: string | undefined, body: unknown): Promise<CertEventResponse> {
  if (!deps.token) return { status: 404, body: { error: 'not_found', message: 'the cert-events endpoint is disabled on this relay (no cert event token configured)' } };
  if (!tokenHeader || !sameToken(tokenHeader, deps.token)) return { status: 401, body: { error: 'unauthorized', message: 'missing or wrong x-cert-event-token' } };
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const errors: string[] = [];
  const domain = typeof b.domain === 'string' ? b.domain.trim().toLowerCase() : '';
  if (!domain) errors.push('domain: required string');
  const status = b.status as TlsStatus;
  if (!STATUSES.includes(status)) errors.push(`status: one of ${STATUSES.join(', ')}`);
  const notAfter = b.not_after === undefined ? undefined : Date.parse(String(b.not_after));
  if (notAfter !== undefined && !Number.isFinite(notAfter)) errors.push('not_after: an ISO 8601 time');
  for (const k of ['certificate_ref', 'error', 'message'] as const) if (b[k] !== undefined && typeof b[k] !== 'string') errors.push(`${k}: string`);
  if (errors.length) return { status: 400, body: { error: 'invalid_input', message: errors.join('; '), errors } };
  const row = await domainByName(deps.store, domain);
  if (!row) return { status: 404, body: { error: 'not_found', message: `${domain} is not a registered domain` } };
  const now = (deps.clock ?? systemClock).now();
  const patch: DomainTlsPatch = {
    tls_status: status,
    tls_last_checked_at: nowIso(now),
    tls_last_error: status === 'tls_error' ? String(b.error ?? b.message ?? 'reported by the external certificate manager') : null,
  };
  if (notAfter !== undefined) patch.tls_not_after = nowIso(notAfter);
  if (typeof b.certificate_ref === 'string') patch.certificate_ref = b.certificate_ref;
  await updateDomainTls(deps.store, row.domain, patch);
  const message = `external certificate manager reports ${status}${b.message ? `: ${String(b.message)}` : ''}${patch.tls_last_error ? `: ${patch.tls_last_error}` : ''}`;
  await recordCertEvent(deps.store, { domain: row.domain, kind: 'external', message, detail: { ...b } }, now);
  if (status === 'tls_error') await deps.onAlert?.({ kind: 'external_error', domain: row.domain, message, at: nowIso(now) });
  return { status: 202, body: { ok: true, domain: row.domain, tls_status: status } };
}
