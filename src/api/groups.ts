import { Hono } from 'hono';
import { validator } from 'hono/validator';
import type { Identity } from '../auth/identity.ts';
import { asObject, asString, asStringArray, requireBearer, type ApiEnv } from './http.ts';

// /v1/groups — `tunn group create|list|show|add|rm|delete`.
export function groupRoutes(identity: Identity) {
  const { groups } = identity;
  return new Hono<ApiEnv>()
    .use(requireBearer(identity))
    .get('/', async (c) => c.json({ groups: await groups.list(c.get('caller').accountId) }))
    .post(
      '/',
      validator('json', (v) => {
        const o = asObject(v);
        return { name: asString(o, 'name', { max: 64 }), emails: asStringArray(o, 'emails', { optional: true }) };
      }),
      async (c) => {
        const { name, emails } = c.req.valid('json');
        return c.json({ group: await groups.create(c.get('caller').accountId, name, emails) }, 201);
      },
    )
    .get('/:name', async (c) => c.json({ group: await groups.show(c.get('caller').accountId, c.req.param('name')) }))
    .post(
      '/:name/members',
      validator('json', (v) => ({ emails: asStringArray(asObject(v), 'emails') })),
      async (c) => c.json({ group: await groups.add(c.get('caller').accountId, c.req.param('name'), c.req.valid('json').emails) }),
    )
    .delete('/:name/members/:email', async (c) => c.json({ group: await groups.remove(c.get('caller').accountId, c.req.param('name'), [c.req.param('email')]) }))
    .delete('/:name', async (c) => {
      await groups.delete(c.get('caller').accountId, c.req.param('name'));
      return c.json({ deleted: true as const });
    });
}
