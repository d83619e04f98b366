import { Hono } from 'hono';
import type { Identity } from '../auth/identity.ts';
import { TunnError } from '../lib/errors.ts';
import { requireBearer, type ApiEnv } from './http.ts';

// /v1/tunnels — `tunn status` and `tunn stop`: the caller's live tunnels on this relay, and
// closing one of them from anywhere. Owner-only: nobody sees or stops another account's tunnel.

/** One live tunnel as `tunn status` shows it. */
export interface TunnelStatus {
  name: string;
  host: string;
  url: string;
  urls: string[];
  kind: string;
  /** Every control in force: "everyone (public)", allow-list entries, basic auth, IP allow-list, rate limits. */
  allowed: string[];
  /** Agents serving it, and their sessions (connections) to the relay. */
  agents: number;
  sessions: number;
  /** When it came online (ISO 8601). */
  since: string;
  /** Requests answered since it came online. */
  requests: number;
}

/**
 * What the relay offers the API about its live tunnels. Implementations only ever return or
 * stop tunnels of `accountId`.
 */
export interface TunnelControl {
  list(accountId: string): TunnelStatus[];
  /** Closes the account's tunnels named `nameOrHost` (a name or a full host); returns what it stopped. */
  stop(accountId: string, nameOrHost: string, why: string): TunnelStatus[];
}

export function tunnelRoutes(identity: Identity, control: TunnelControl) {
  return new Hono<ApiEnv>()
    .use(requireBearer(identity))
    .get('/', (c) => c.json({ tunnels: control.list(c.get('caller').accountId) }))
    .delete('/:name', (c) => {
      const { accountId, email } = c.get('caller');
      const raw = c.req.param('name').trim().toLowerCase().replace(/^https?:\/\//, '').replace(/[/:].*$/, '');
      const matching = control.list(accountId).filter((t) => t.host === raw || t.name === raw);
      if (matching.length === 0) throw new TunnError('NOT_FOUND', `you have no live tunnel named ${raw}: \`tunn status\` lists yours`);
      if (matching.length > 1) throw new TunnError('CONFLICT', `${raw} names ${matching.length} of your tunnels (${matching.map((t) => t.host).join(', ')}): give the full host`);
      const stopped = control.stop(accountId, matching[0]!.host, `the tunnel ${matching[0]!.host} was stopped with \`tunn stop\` by ${email}`);
      return c.json({ stopped });
    });
}
