import { Hono } from 'hono';
import { z } from 'zod';
import { parseDuration } from '../auth/grants.ts';
import type { Identity } from '../auth/identity.ts';
import { normaliseHost } from '../auth/sessions.ts';
import { TunnError } from '../lib/errors.ts';
import { requireCaller } from './caller.ts';
import type { ApiEnv } from './http.ts';
import { jsonBody, params, query } from './validate.ts';

// /v1/grants — `tunn grant add|list|rm`: access to one of your tunnels that ends on its own.

/** The tunnel host, if the caller holds its name (a live tunnel or one whose agent is away). */
async function ownedHost(identity: Identity, accountId: string, raw: string): Promise<string> {
  const host = normaliseHost(raw.replace(/^https?:\/\//i, '').replace(/[/:].*$/, ''));
  const dot = host.indexOf('.');
  const row = dot > 0 ? await identity.store.db.selectFrom('names').select('account_id').where('domain', '=', host.slice(dot + 1)).where('name', '=', host.slice(0, dot)).executeTakeFirst() : undefined;
  if (!row || row.account_id !== accountId) throw new TunnError('NOT_FOUND', `you have no tunnel at ${host}: give the hostname of one of your tunnels, e.g. demo.${identity.relayUrl.hostname}`);
  return host;
}

const addBody = z.object({ host: z.string().min(1).max(253), who: z.string().min(1).max(320), for: z.string().min(1).max(32) });
const listQuery = z.object({ host: z.string().max(253).optional() });
const removeQuery = z.object({ host: z.string().max(253).optional(), who: z.string().max(320).optional() });
const idParam = z.object({ id: z.string().min(1).max(100) });

export function grantRoutes(identity: Identity) {
  const { grants } = identity;
  return new Hono<ApiEnv>()
    .use(requireCaller(identity))
    .get('/', query(listQuery), async (c) => {
      const { host } = c.req.valid('query');
      const accountId = c.get('caller').accountId;
      return c.json({ grants: await grants.list(accountId, host ? await ownedHost(identity, accountId, host) : undefined) });
    })
    .post('/', jsonBody(addBody), async (c) => {
      const b = c.req.valid('json');
      const accountId = c.get('caller').accountId;
      const host = await ownedHost(identity, accountId, b.host);
      const seconds = parseDuration(b.for);
      await identity.policy.validate(accountId, [b.who]);
      return c.json({ grant: await grants.add(accountId, host, b.who, seconds) }, 201);
    })
    .delete('/:id', params(idParam), async (c) => c.json({ removed: await grants.remove(c.get('caller').accountId, { id: c.req.valid('param').id }) }))
    .delete('/', query(removeQuery), async (c) => {
      const { host, who } = c.req.valid('query');
      if (!host || !who) throw new TunnError('INVALID_INPUT', 'say which grant to end: DELETE /v1/grants/<id>, or ?host=<tunnel host>&who=<entry>');
      const accountId = c.get('caller').accountId;
      return c.json({ removed: await grants.remove(accountId, { host: await ownedHost(identity, accountId, host), who }) });
    });
}
