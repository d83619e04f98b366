import { nowIso, randomId } from '../lib/ids.ts';
import type { Store } from '../store/store.ts';
import type { CertLifecycle } from './hooks.ts';

// The certificate event log, per domain (or per certificate name for the relay's own names).

export type CertEventKind =
  | 'issued'
  | 'renewed'
  | 'failed'
  | 'retry_scheduled'
  | 'expiring'
  | 'probe_ok'
  | 'probe_drift'
  | 'probe_error'
  | 'external'
  | 'verified'
  | 'alert';

export interface CertEvent {
  id: string;
  at: string;
  domain: string;
  kind: CertEventKind;
  message: string;
  detail: Record<string, unknown>;
}

let seq = 0;
/** Ids sort in insertion order within a process (events at the same clock time keep their order). */
function eventId(): string {
  seq = (seq + 1) % 1_000_000;
  return Date.now().toString(36).padStart(9, '0') + seq.toString(36).padStart(4, '0') + randomId(8);
}

export async function recordCertEvent(store: Store, e: { domain: string; kind: CertEventKind; message: string; detail?: Record<string, unknown> }, now = Date.now()): Promise<CertEvent> {
  const ev: CertEvent = { id: eventId(), at: nowIso(now), domain: e.domain, kind: e.kind, message: e.message, detail: e.detail ?? {} };
  await store.db.insertInto('cert_events').values({ ...ev, detail: JSON.stringify(ev.detail) }).execute();
  return ev;
}

/** Newest first. */
export async function listCertEvents(store: Store, domain: string, limit = 50): Promise<CertEvent[]> {
  const rows = await store.db.selectFrom('cert_events').selectAll().where('domain', '=', domain).orderBy('at', 'desc').orderBy('id', 'desc').limit(limit).execute();
  return rows.map((r) => ({ ...r, kind: r.kind as CertEventKind, detail: JSON.parse(r.detail) as Record<string, unknown> }));
}

/**
 * The event log as a lifecycle party (hooks.ts): each certificate change becomes events under
 * its subject (a custom domain) or, for the relay's own names, under the certificate's name.
 */
export function certEventLog(store: Store): CertLifecycle {
  return {
    async onStateChange(c) {
      if (c.kind === 'retry_reset' || c.kind === 'obtaining') return;
      const d = c.decision;
      const domain = d.domain ?? d.name;
      if (c.kind === 'issued') {
        const kind: CertEventKind = c.renewed ? 'renewed' : 'issued';
        const notAfter = nowIso(c.cert.notAfter);
        await recordCertEvent(store, { domain, kind, message: `certificate for ${d.names.join(', ')} ${kind} by ${c.cert.issuer}, valid until ${notAfter}`, detail: { certificate_ref: c.cert.id, not_after: notAfter, reason: c.reason } }, c.at);
      } else if (c.kind === 'failed') {
        await recordCertEvent(store, { domain, kind: 'failed', message: c.error, detail: { failures: c.failures, still_serving: c.stillServing?.id ?? null } }, c.at);
        const next = c.nextRetryAt === null ? null : nowIso(c.nextRetryAt);
        const message = next === null ? 'automatic retries are off for this domain (manual policy); run `tunn domain verify` to retry' : `next attempt at ${next}`;
        await recordCertEvent(store, { domain, kind: 'retry_scheduled', message, detail: { next_retry_at: next } }, c.at);
      } else if (c.kind === 'expiring' && c.firstNotice) {
        await recordCertEvent(store, { domain, kind: 'expiring', message: `expires at ${nowIso(c.cert.notAfter)}`, detail: { certificate_ref: c.cert.id } }, c.at);
      }
    },
  };
}
