import type { Clock } from '../lib/clock.ts';
import { TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import type { Dns01Provider } from './dns01-provider.ts';
import { isInZone } from './zone.ts';

// The relay's half of DNS-01 for an agent that gets its own certificate (issue 12): it
// publishes `_acme-challenge.<name>` TXT values in its zone only for names that agent's
// tunnels hold, so no agent can obtain a certificate for another's name, and removes them
// after. Phase 2 calls this from the control-stream handler of one agent session.

export interface AgentDns01 {
  present(recordName: string, value: string): Promise<void>;
  cleanup(recordName: string, value: string): Promise<void>;
}

const WEEK_MS = 7 * 86_400_000;

/**
 * How many DNS-01 challenges each account's agents may have the relay publish per rolling
 * week: every certificate for a name under the relay's zone counts against the CA's limit for
 * that one registered domain (Let's Encrypt: 50 a week), shared by every account.
 */
export class Dns01Budget {
  readonly #perWeek: number;
  readonly #clock: Clock;
  readonly #used = new Map<string, number[]>();

  constructor(opts: { perWeek: number; clock: Clock }) {
    this.#perWeek = opts.perWeek;
    this.#clock = opts.clock;
  }

  /** What `accountId` has left this week (for `tunn cert list`). */
  remaining(accountId: string): number {
    return this.#perWeek - this.#recent(accountId).length;
  }

  /** Counts one challenge, or throws RATE_LIMITED saying when the next one is possible. */
  take(accountId: string): void {
    const recent = this.#recent(accountId);
    if (recent.length >= this.#perWeek) {
      const next = new Date(recent[0]! + WEEK_MS).toISOString();
      throw new TunnError('RATE_LIMITED', `this account's agents used their ${this.#perWeek} DNS-01 challenges for this week; the next one is possible at ${next} (the agent keeps its stored certificates meanwhile)`);
    }
    recent.push(this.#clock.now());
    this.#used.set(accountId, recent);
  }

  #recent(accountId: string): number[] {
    const since = this.#clock.now() - WEEK_MS;
    return (this.#used.get(accountId) ?? []).filter((t) => t > since);
  }
}

/**
 * `holds(hostname)`: whether the asking agent holds a live tunnel for that (normalised) host.
 * With `budget`, each present() counts against `accountId`'s weekly budget.
 */
export function agentDns01(provider: Dns01Provider, holds: (hostname: string) => boolean, limit?: { budget: Dns01Budget; accountId: string }): AgentDns01 {
  const check = (recordName: string, what: string): string => {
    const n = normalizeHost(recordName);
    const host = n.startsWith('_acme-challenge.') ? n.slice('_acme-challenge.'.length) : '';
    if (!host || !isInZone(host, provider.zone)) throw new TunnError('FORBIDDEN', `${what} ${recordName.slice(0, 253)}: an agent may only ask for _acme-challenge.<its name> under ${provider.zone}`);
    if (!holds(host)) throw new TunnError('FORBIDDEN', `${what} ${n}: this agent does not hold a tunnel for ${host}`);
    return n;
  };
  return {
    async present(recordName, value) {
      const n = check(recordName, 'publishing a DNS-01 record at');
      limit?.budget.take(limit.accountId);
      await provider.present(n, value);
      await provider.waitVisible(n, value);
    },
    async cleanup(recordName, value) {
      await provider.cleanup(check(recordName, 'removing the DNS-01 record at'), value);
    },
  };
}
