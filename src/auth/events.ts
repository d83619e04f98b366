import type { Clock } from '../lib/clock.ts';
import { nowIso, randomId } from '../lib/ids.ts';
import type { Store } from '../store/store.ts';
import type { SecurityEventKind } from './event-kinds.ts';

export { EVENT_KINDS, type SecurityEventKind } from './event-kinds.ts';

// Security events (seed 001): failed logins, use of a revoked token, denied visitors,
// rate-limit bursts. Events that can come in floods are recorded once per key and window:
// the first occurrence writes a row, later ones in the same window only count in memory, and
// the count is written back when the window closes (on the next occurrence after it, or on
// flush()). A flood therefore costs one write per window, not one per request.

export interface SecurityEvent {
  id: string;
  at: string;
  kind: SecurityEventKind;
  ip: string | null;
  email: string | null;
  tunnel: string | null;
  accountId: string | null;
  detail: string;
  count: number;
}

export interface RecordEvent {
  kind: SecurityEventKind;
  ip?: string;
  email?: string;
  tunnel?: string;
  /** The account the event concerns (tunnel owner, token owner): who sees it in `tunn events`. */
  accountId?: string;
  detail?: string;
}

export interface EventFilter {
  accountId?: string;
  kind?: SecurityEventKind;
  tunnel?: string;
  email?: string;
  ip?: string;
  /** ISO time; only events at or after it. */
  since?: string;
  /** ISO time; only events before it. */
  until?: string;
  /** Paging: only events after this one in the list's order (newest first). */
  after?: { at: string; id: string };
  limit?: number;
}

interface Window {
  id: string;
  start: number;
  count: number;
  written: number;
}

export class EventLog {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #windowMs: number;
  readonly #onError: (err: unknown) => void;
  #windows = new Map<string, Window>();

  constructor(opts: { store: Store; clock: Clock; windowMs?: number; onError?: (err: unknown) => void }) {
    this.#store = opts.store;
    this.#clock = opts.clock;
    this.#windowMs = opts.windowMs ?? 60_000;
    this.#onError = opts.onError ?? (() => {});
  }

  /**
   * Records an event, deduplicated per (kind, ip, email, tunnel, account) and window. Never throws:
   * a failure to record must not turn a denial into an error page (it goes to onError).
   */
  async record(ev: RecordEvent): Promise<void> {
    try {
      // The account is part of the key: two owners' events from one IP (a shared NAT) in the
      // same window must each land in the owner's own list.
      const key = [ev.kind, ev.ip ?? '', ev.email ?? '', ev.tunnel ?? '', ev.accountId ?? ''].join('\0');
      const now = this.#clock.now();
      const w = this.#windows.get(key);
      if (w && now - w.start < this.#windowMs) {
        w.count++;
        return;
      }
      if (w) {
        this.#windows.delete(key);
        await this.#writeCount(w);
      }
      if (this.#windows.size > 10_000) await this.flush();
      const id = randomId(20);
      this.#windows.set(key, { id, start: now, count: 1, written: 1 });
      await this.#store.db
        .insertInto('security_events')
        .values({ id, at: nowIso(now), kind: ev.kind, ip: ev.ip ?? null, email: ev.email ?? null, tunnel: ev.tunnel ?? null, account_id: ev.accountId ?? null, detail: ev.detail ?? '', count: 1 })
        .execute();
    } catch (err) {
      this.#onError(err);
    }
  }

  /** Writes pending burst counts (call before listing, and at shutdown). */
  async flush(): Promise<void> {
    const ws = [...this.#windows.values()];
    const now = this.#clock.now();
    for (const [k, w] of this.#windows) if (now - w.start >= this.#windowMs) this.#windows.delete(k);
    for (const w of ws) await this.#writeCount(w);
  }

  async list(filter: EventFilter = {}): Promise<SecurityEvent[]> {
    await this.flush();
    let q = this.#store.db.selectFrom('security_events').selectAll();
    if (filter.accountId !== undefined) q = q.where('account_id', '=', filter.accountId);
    if (filter.kind) q = q.where('kind', '=', filter.kind);
    if (filter.tunnel) q = q.where('tunnel', '=', filter.tunnel);
    if (filter.email) q = q.where('email', '=', filter.email.toLowerCase());
    if (filter.ip) q = q.where('ip', '=', filter.ip);
    if (filter.since) q = q.where('at', '>=', filter.since);
    if (filter.until) q = q.where('at', '<', filter.until);
    const after = filter.after;
    if (after) q = q.where((eb) => eb.or([eb('at', '<', after.at), eb.and([eb('at', '=', after.at), eb('id', '<', after.id)])]));
    const rows = await q.orderBy('at', 'desc').orderBy('id', 'desc').limit(Math.min(Math.max(filter.limit ?? 100, 1), 1000)).execute();
    return rows.map((r) => ({ id: r.id, at: r.at, kind: r.kind as SecurityEventKind, ip: r.ip, email: r.email, tunnel: r.tunnel, accountId: r.account_id, detail: r.detail, count: r.count }));
  }

  async #writeCount(w: Window): Promise<void> {
    if (w.count === w.written) return;
    w.written = w.count;
    await this.#store.db.updateTable('security_events').set({ count: w.count }).where('id', '=', w.id).execute();
  }
}
