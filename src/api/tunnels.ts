import { Hono } from 'hono';
import { z } from 'zod';
import type { Identity } from '../auth/identity.ts';
import { TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import { requireCaller } from './caller.ts';
import { domainsVisibleTo, type Caller } from '../domains/access.ts';
import type { ApiEnv } from './http.ts';
import { tunnelEventsRoute, type TunnelEventsOptions } from './tunnel-events.ts';
import { jsonBody, params } from './validate.ts';

// /v1/tunnels — `tunn status`, `tunn stop` and the console's Tunnels page: the live tunnels the
// caller may see (their own, and those on custom domains they own or were shared), and closing
// one of their own from anywhere. Nobody sees a tunnel outside that set, and only a tunnel's
// owner may stop it.

/** One live tunnel as the relay reports it to the API (src/relay/tunnel-control.ts). */
export interface LiveTunnel {
  host: string;
  name: string;
  /** The domain it is served under: the relay's own or a custom domain. */
  domain: string;
  url: string;
  urls: string[];
  /** http today; tcp, udp, tls once the relay's tunnel options carry a kind. */
  kind: string;
  /** The owner's account and email. */
  accountId: string;
  owner: string;
  /** The -a entries as given (group:eng, @corp.com, emails); empty when public. */
  allow: string[];
  public: boolean;
  /** Every control in force, in words: "everyone (public)", allow-list entries, basic auth, IP allow-list, rate limits. */
  allowed: string[];
  /** Agents serving it, and their sessions (connections) to the relay. */
  agents: number;
  sessions: number;
  /** When it came online (ISO 8601). */
  since: string;
  /** Requests answered, and bytes from visitors (in) and to them (out), since its host came online on this relay. */
  requests: number;
  bytesIn: number;
  bytesOut: number;
}

/** What the caller sees of a live tunnel: `access` says whether it is theirs or visible through its domain (read-only). */
export type TunnelStatus = Omit<LiveTunnel, 'accountId'> & { access: 'owner' | 'domain' };

/**
 * What the relay offers the API about its live tunnels. The API decides who sees which.
 * Implementations MUST be cheap to call (the events stream polls list()).
 */
export interface TunnelControl {
  /** Every live tunnel on this relay. */
  list(): LiveTunnel[];
  /** Closes the tunnel at `host` the way revocation does: its agents are told `why` (fatal: they exit and do not reconnect), its open connections cut. */
  stop(host: string, why: string): LiveTunnel | undefined;
}

/** The tunnels `who` may see, as they see them. */
export async function visibleTunnels(identity: Identity, control: TunnelControl, who: Caller): Promise<TunnelStatus[]> {
  const live = control.list();
  const domains = live.some((t) => t.accountId !== who.accountId) ? new Set((await domainsVisibleTo(identity.store, who)).map((x) => x.domain.domain)) : new Set<string>();
  const out: TunnelStatus[] = [];
  for (const t of live) {
    const mine = t.accountId === who.accountId;
    if (!mine && !domains.has(normalizeHost(t.domain))) continue;
    out.push(statusView(t, mine ? 'owner' : 'domain'));
  }
  return out.sort((a, b) => a.host.localeCompare(b.host));
}

export function statusView(t: LiveTunnel, access: TunnelStatus['access']): TunnelStatus {
  const { accountId: _, ...rest } = t;
  return { ...rest, access };
}

const hostParam = z.object({ host: z.string().min(1).max(300) });
const allowBody = z.object({ allow: z.array(z.string().max(1000)).max(1000) });

export function tunnelRoutes(identity: Identity, control: TunnelControl | undefined, events: TunnelEventsOptions = {}) {
  const live = (): TunnelControl => {
    if (!control) throw new TunnError('NOT_FOUND', 'this relay does not serve live tunnel status');
    return control;
  };
  return new Hono<ApiEnv>()
    .use(requireCaller(identity))
    .get('/', async (c) => c.json({ tunnels: await visibleTunnels(identity, live(), c.get('caller')) }))
    .route('/events', tunnelEventsRoute(identity, () => live(), events))
    .post('/validate-allow', jsonBody(allowBody), async (c) => c.json(await identity.policy.validate(c.get('caller').accountId, c.req.valid('json').allow)))
    .delete('/:host', params(hostParam), async (c) => {
      const caller = c.get('caller');
      const raw = normalizeHost(c.req.valid('param').host.replace(/^https?:\/\//i, '').replace(/[/:].*$/, ''));
      const seen = await visibleTunnels(identity, live(), caller);
      const matching = seen.filter((t) => t.host === raw || t.name === raw);
      const own = matching.filter((t) => t.access === 'owner');
      if (own.length === 0 && matching.length > 0) {
        throw new TunnError('FORBIDDEN', `${matching[0]!.host} is ${matching[0]!.owner}'s tunnel on a domain you can see; only its owner can stop it`);
      }
      if (own.length === 0) throw new TunnError('NOT_FOUND', `you have no live tunnel named ${raw}: \`tunn status\` lists yours`);
      if (own.length > 1) throw new TunnError('CONFLICT', `${raw} names ${own.length} of your tunnels (${own.map((t) => t.host).join(', ')}): give the full host`);
      const how = caller.via === 'token' ? 'with `tunn stop`' : 'from the web console';
      const stopped = live().stop(own[0]!.host, `the tunnel ${own[0]!.host} was stopped ${how} by ${caller.email}`);
      return c.json({ stopped: stopped ? [statusView(stopped, 'owner')] : [] });
    });
}
