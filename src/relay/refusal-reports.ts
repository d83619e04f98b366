import {
  MAX_REFUSAL_DETAIL,
  MAX_REFUSAL_METHOD,
  MAX_REFUSAL_PATH,
  MAX_REFUSAL_WHO,
  MAX_REFUSALS_PER_REPORT,
  type ControlMessage,
  type Refusal,
  type RefusalReason,
} from '../protocol/messages.ts';
import type { Tunnel } from './tunnel-directory.ts';

// Tells each agent about the requests the relay answered itself for its tunnels (refused at
// the edge, target down), so the owner's request log shows every request. A flood of refused
// requests (a scanner, a rate-limited client) must not flood the agent link: per tunnel, at
// most one message a second carrying at most MAX_REFUSALS_PER_REPORT refusals; the rest of
// that second is only counted by status and reason. Memory per tunnel is bounded the same way,
// and so is each refusal: every field a visitor chooses is cut here (the one place all go through).

type RefusedMessage = Extract<ControlMessage, { type: 'refused' }>;

export interface RefusalReportsOptions {
  /** Sends a report to one live session of the tunnel's agent (none live: dropped). */
  send(tunnel: Tunnel, m: RefusedMessage): void;
  /** Default 1000 ms. */
  intervalMs?: number;
}

interface Pending {
  refusals: Refusal[];
  more: Map<string, { status: number; reason: RefusalReason; count: number }>;
}

export class RefusalReports {
  readonly #o: RefusalReportsOptions;
  readonly #pending = new Map<Tunnel, Pending>();
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: RefusalReportsOptions) {
    this.#o = opts;
  }

  add(tunnel: Tunnel, r: Refusal): void {
    let p = this.#pending.get(tunnel);
    if (!p) {
      p = { refusals: [], more: new Map() };
      this.#pending.set(tunnel, p);
    }
    if (p.refusals.length < MAX_REFUSALS_PER_REPORT) p.refusals.push(boundRefusal(r));
    else {
      const key = `${r.status} ${r.reason}`;
      const m = p.more.get(key);
      if (m) m.count++;
      else p.more.set(key, { status: r.status, reason: r.reason, count: 1 });
    }
    if (!this.#timer) {
      this.#timer = setTimeout(() => this.flush(), this.#o.intervalMs ?? 1000);
      this.#timer.unref();
    }
  }

  /** Sends what is pending now (the timer calls it once a second). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const all = [...this.#pending];
    this.#pending.clear();
    for (const [tunnel, p] of all) {
      this.#o.send(tunnel, { type: 'refused', id: tunnel.id, refusals: p.refusals, more: [...p.more.values()] });
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
  }
}

/** `r` with every free-text field cut to its MAX_REFUSAL_* length. */
export function boundRefusal(r: Refusal): Refusal {
  const out: Refusal = { ...r, method: cut(r.method, MAX_REFUSAL_METHOD), path: cut(r.path, MAX_REFUSAL_PATH) };
  if (r.who !== undefined) out.who = cut(r.who, MAX_REFUSAL_WHO);
  if (r.detail !== undefined) out.detail = cut(r.detail, MAX_REFUSAL_DETAIL);
  return out;
}

function cut(s: string, max: number): string {
  return s.length > max ? s.slice(0, max) : s;
}
