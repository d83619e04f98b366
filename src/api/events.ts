import { Hono } from 'hono';
import { EVENT_KINDS, type SecurityEventKind } from '../auth/events.ts';
import type { Identity } from '../auth/identity.ts';
import { TunnError } from '../lib/errors.ts';
import { requireBearer, type ApiEnv } from './http.ts';

// GET /v1/events — `tunn events`. Each account sees the events about its tunnels and tokens;
// operators listed in adminEmails see every account's (and the relay-wide ones) with ?all=1.
export function eventRoutes(identity: Identity) {
  const admins = new Set((identity.options.adminEmails ?? []).map((e) => e.toLowerCase()));
  return new Hono<ApiEnv>().use(requireBearer(identity)).get('/', async (c) => {
    const q = c.req.query();
    const caller = c.get('caller');
    if (q.kind && !EVENT_KINDS.includes(q.kind as SecurityEventKind)) throw new TunnError('INVALID_INPUT', `unknown event kind "${q.kind}"; one of: ${EVENT_KINDS.join(', ')}`);
    if (q.since && Number.isNaN(Date.parse(q.since))) throw new TunnError('INVALID_INPUT', `"since" must be an ISO time such as 2026-01-31T00:00:00Z, not "${q.since}"`);
    if (q.limit && !/^\d+$/.test(q.limit)) throw new TunnError('INVALID_INPUT', `"limit" must be a whole number, not "${q.limit}"`);
    const all = q.all === '1';
    if (all && !admins.has(caller.email)) throw new TunnError('FORBIDDEN', 'only the relay operators (--admin-email) can list every account\'s events');
    const events = await identity.events.list({
      accountId: all ? undefined : caller.accountId,
      kind: q.kind as SecurityEventKind | undefined,
      tunnel: q.tunnel,
      email: q.email,
      ip: q.ip,
      since: q.since ? new Date(q.since).toISOString() : undefined,
      limit: q.limit ? Number(q.limit) : undefined,
    });
    return c.json({ events });
  });
}
