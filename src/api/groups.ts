import { Hono } from 'hono';
import { z } from 'zod';
import type { Identity } from '../auth/identity.ts';
import { requireCaller } from './caller.ts';
import type { ApiEnv } from './http.ts';
import { jsonBody, params } from './validate.ts';

// /v1/groups — `tunn group create|list|show|add|rm|delete`, and the console's Groups page.
// Shapes are checked here; names and emails by the group service (its messages name the entry).

const emails = z.array(z.string().max(320)).max(1000);
const createBody = z.object({ name: z.string().min(1).max(64), emails: emails.optional() });
const membersBody = z.object({ emails });
const groupParam = z.object({ name: z.string().min(1).max(64) });
const memberParam = z.object({ name: z.string().min(1).max(64), email: z.string().min(1).max(320) });

export function groupRoutes(identity: Identity) {
  const { groups } = identity;
  return new Hono<ApiEnv>()
    .use(requireCaller(identity))
    .get('/', async (c) => c.json({ groups: await groups.list(c.get('caller').accountId) }))
    .post('/', jsonBody(createBody), async (c) => {
      const { name, emails } = c.req.valid('json');
      return c.json({ group: await groups.create(c.get('caller').accountId, name, emails ?? []) }, 201);
    })
    .get('/:name', params(groupParam), async (c) => c.json({ group: await groups.show(c.get('caller').accountId, c.req.valid('param').name) }))
    .post('/:name/members', params(groupParam), jsonBody(membersBody), async (c) => c.json({ group: await groups.add(c.get('caller').accountId, c.req.valid('param').name, c.req.valid('json').emails) }))
    .delete('/:name/members/:email', params(memberParam), async (c) => {
      const p = c.req.valid('param');
      return c.json({ group: await groups.remove(c.get('caller').accountId, p.name, [p.email]) });
    })
    .delete('/:name', params(groupParam), async (c) => {
      await groups.delete(c.get('caller').accountId, c.req.valid('param').name);
      return c.json({ deleted: true as const });
    });
}
