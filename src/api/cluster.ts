import { Hono } from 'hono';
import type { Identity } from '../auth/identity.ts';
import type { ClusterStatus } from '../cluster/status.ts';
import { TunnError } from '../lib/errors.ts';
import { isRelayAdmin, requireCaller } from './caller.ts';
import type { ApiEnv } from './http.ts';

// GET /v1/cluster — what `tunn relay status` shows (the relays of a cluster: alive, since,
// agents, tunnels; and where each tunnel is served), for the relay's operators (--admin-email)
// over the API instead of the database.

export function clusterRoutes(identity: Identity, status: (() => Promise<ClusterStatus>) | undefined) {
  return new Hono<ApiEnv>().use(requireCaller(identity)).get('/', async (c) => {
    if (!isRelayAdmin(identity, c.get('caller').email)) throw new TunnError('FORBIDDEN', 'only the relay operators (--admin-email) can see the cluster');
    if (!status) throw new TunnError('NOT_FOUND', 'this relay is not part of a cluster: relays join one with --node-url and a postgres:// --store');
    return c.json(await status());
  });
}
