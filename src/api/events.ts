import { Hono } from 'hono';
import { z } from 'zod';
import { EVENT_KINDS, type SecurityEvent } from '../auth/events.ts';
import type { Identity } from '../auth/identity.ts';
import { TunnError } from '../lib/errors.ts';
import { isRelayAdmin, requireCaller } from './caller.ts';
import type { ApiEnv } from './http.ts';
import { query } from './validate.ts';

// GET /v1/events — `tunn events` and the console's Events page. Each account sees the events
// about its tunnels and tokens; operators listed in adminEmails see every account's (and the
// relay-wide ones) with ?all=1. Newest first; `next` is the cursor of the following page.

const isoTime = z
  .string()
  .refine((v) => !Number.isNaN(Date.parse(v)), { message: 'must be an ISO time such as 2026-01-31T00:00:00Z' })
  .transform((v) => new Date(v).toISOString());

const listQuery = z.object({
  kind: z.enum(EVENT_KINDS as [string, ...string[]]).optional(),
  tunnel: z.string().max(253).optional(),
  email: z.string().max(320).optional(),
  ip: z.string().max(64).optional(),
  since: isoTime.optional(),
  until: isoTime.optional(),
  limit: z.string().regex(/^\d+$/, { message: 'must be a whole number' }).transform(Number).pipe(z.number().min(1).max(500)).optional(),
  cursor: z.string().max(200).optional(),
  all: z.enum(['0', '1']).optional(),
});

/** The opaque cursor after `e` (its time and id). */
function cursorOf(e: SecurityEvent): string {
  return Buffer.from(`${e.at}\n${e.id}`).toString('base64url');
}

function parseCursor(raw: string): { at: string; id: string } {
  const [at, id, extra] = Buffer.from(raw, 'base64url').toString('utf8').split('\n');
  if (!at || !id || extra !== undefined || Number.isNaN(Date.parse(at))) throw new TunnError('INVALID_INPUT', '"cursor" is not one this API gave out: pass the "next" value of the previous page as it was');
  return { at, id };
}

export function eventRoutes(identity: Identity) {
  return new Hono<ApiEnv>().use(requireCaller(identity)).get('/', query(listQuery), async (c) => {
    const q = c.req.valid('query');
    const caller = c.get('caller');
    const all = q.all === '1';
    if (all && !isRelayAdmin(identity, caller.email)) throw new TunnError('FORBIDDEN', "only the relay operators (--admin-email) can list every account's events");
    const limit = q.limit ?? 100;
    // One more than asked tells whether there is a next page.
    const rows = await identity.events.list({
      accountId: all ? undefined : caller.accountId,
      kind: q.kind as SecurityEvent['kind'] | undefined,
      tunnel: q.tunnel,
      email: q.email,
      ip: q.ip,
      since: q.since,
      until: q.until,
      after: q.cursor ? parseCursor(q.cursor) : undefined,
      limit: limit + 1,
    });
    const events = rows.slice(0, limit);
    return c.json({ events, next: rows.length > limit ? cursorOf(events.at(-1)!) : null });
  });
}
