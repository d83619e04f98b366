import { Hono } from 'hono';
import { validator } from 'hono/validator';
import { parseDuration } from '../auth/grants.ts';
import type { Identity } from '../auth/identity.ts';
import { normaliseHost } from '../auth/sessions.ts';
import { TunnError } from '../lib/errors.ts';
import { asObject, asString, requireBearer, type ApiEnv } from './http.ts';

// /v1/grants — `tunn grant add|list|rm`: access to one of your tunnels that ends on its own.

/** The tunnel host, if the caller holds its name (a live tunnel or one whose agent is away). */
async function ownedHost(identity: Identity, accountId: string, raw: string): Promise<string> {
  const host = normaliseHost(raw.replace(/^https?:\/\//i, '').replace(/[/:].*$/, ''));
  const dot = host.indexOf('.');
  const row = dot > 0 ? await identity.store.db.selectFrom('names').select('account_id').where('domain', '=', host.slice(dot + 1)).where('name', '=', host.slice(0, dot)).executeTakeFirst() : undefined;
  if (!row || row.account_id !== accountId) throw new TunnError('NOT_FOUND', `you have no tunnel at ${host}: give the hostname of one of your tunnels, e.g. demo.${identity.relayUrl.hostname}`);
  return host;
}

export function grantRoutes(identity: Identity) {
  const { grants } = identity;
  return new Hono<ApiEnv>()
    .use(requireBearer(identity))
    .get('/', async (c) => {
      const host = c.req.query('host');
      const accountId = c.get('caller').accountId;
      return c.json({ grants: await grants.list(accountId, host ? await ownedHost(identity, accountId, host) : undefined) });
    })
    .post(
      '/',
      validator('json', (v) => {
        const o = asObject(v);
        return { host: asString(o, 'host', { max: 253 }), who: asString(o, 'who', { max: 320 }), for: asString(o, 'for', { max: 32 }) };
      }),
      async (c) => {
        const b = c.req.valid('json');
        const accountId = c.get('caller').accountId;
        const host = await ownedHost(identity, accountId, b.host);
        const seconds = parseDuration(b.for);
        await identity.policy.validate(accountId, [b.who]);
        return c.json({ grant: await grants.add(accountId, host, b.who, seconds) }, 201);
      },
    )
    .delete('/:id', async (c) => c.json({ removed: await grants.remove(c.get('caller').accountId, { id: c.req.param('id') }) }))
    .delete('/', async (c) => {
      const host = c.req.query('host');
      const who = c.req.query('who');
      if (!host || !who) throw new TunnError('INVALID_INPUT', 'say which grant to end: DELETE /v1/grants/<id>, or ?host=<tunnel host>&who=<entry>');
      const accountId = c.get('caller').accountId;
      return c.json({ removed: await grants.remove(accountId, { host: await ownedHost(identity, accountId, host), who }) });
    });
}
