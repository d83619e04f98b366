import type { SessionRef, Tunnel, TunnelDirectory, TunnelInit } from './tunnel-directory.ts';

// The tunnel directory of one relay, in memory (the contract is in tunnel-directory.ts). A
// tunnel is served by one agent (agentId) over one or more sessions; new public connections
// are spread over its sessions round robin.

export type { SessionRef, StreamOpen, Tunnel, TunnelDirectory, TunnelInit } from './tunnel-directory.ts';

export class TunnelRegistry implements TunnelDirectory {
  readonly #byHost = new Map<string, Tunnel>();

  get size(): number {
    return this.#byHost.size;
  }

  get(host: string): Tunnel | undefined {
    return this.#byHost.get(host);
  }

  byName(accountId: string, nameOrHost: string): Tunnel[] {
    const out: Tunnel[] = [];
    for (const t of this.#byHost.values()) if (t.accountId === accountId && (t.host === nameOrHost || t.name === nameOrHost)) out.push(t);
    return out;
  }

  all(): Tunnel[] {
    return [...this.#byHost.values()];
  }

  attach(init: TunnelInit, session: SessionRef, now = Date.now()): Tunnel {
    const existing = this.#byHost.get(init.host);
    if (existing && existing.agentId === init.agentId && existing.accountId === init.accountId) {
      if (!existing.sessions.includes(session)) existing.sessions.push(session);
      existing.options = init.options;
      return existing;
    }
    if (existing) {
      for (const s of existing.sessions) s.replaced(existing.id, `the tunnel ${init.host} was taken over by another agent of ${init.email}`);
    }
    const t: Tunnel = { ...init, sessions: [session], next: 0, since: now };
    this.#byHost.set(init.host, t);
    return t;
  }

  detach(session: SessionRef): Tunnel[] {
    const gone: Tunnel[] = [];
    for (const [host, t] of this.#byHost) {
      const i = t.sessions.indexOf(session);
      if (i < 0) continue;
      t.sessions.splice(i, 1);
      if (t.sessions.length === 0) {
        this.#byHost.delete(host);
        gone.push(t);
      }
    }
    return gone;
  }

  detachTunnel(session: SessionRef, tunnelId: string): Tunnel | undefined {
    for (const [host, t] of this.#byHost) {
      if (t.id !== tunnelId || !t.sessions.includes(session)) continue;
      t.sessions.splice(t.sessions.indexOf(session), 1);
      if (t.sessions.length === 0) {
        this.#byHost.delete(host);
        return t;
      }
    }
    return undefined;
  }

  pickSession(t: Tunnel): SessionRef | undefined {
    const n = t.sessions.length;
    for (let k = 0; k < n; k++) {
      const s = t.sessions[(t.next + k) % n]!;
      if (s.alive) {
        t.next = (t.next + k + 1) % n;
        return s;
      }
    }
    return undefined;
  }
}
