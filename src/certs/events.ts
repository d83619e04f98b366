import { nowIso, randomId } from '../lib/ids.ts';
import type { Store } from '../store/store.ts';

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
