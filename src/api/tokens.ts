import { decodeJwt } from 'jose';
import { Hono } from 'hono';
import { validator } from 'hono/validator';
import type { Identity } from '../auth/identity.ts';
import { TunnError } from '../lib/errors.ts';
import { asObject, asString, requireBearer, type ApiEnv } from './http.ts';

// /v1/tokens — `tunn token list|create|revoke` — and POST /v1/auth/token/revoke (seed 001).

export interface TokenInfo {
  id: string;
  name: string;
  kind: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
}

export function tokenRoutes(identity: Identity) {
  const { tokens, store } = identity;
  return new Hono<ApiEnv>()
    .use(requireBearer(identity))
    .get('/', async (c) => {
      const rows = await store.db
        .selectFrom('tokens')
        .selectAll()
        .where('account_id', '=', c.get('caller').accountId)
        .where('kind', 'in', ['pat', 'agent'])
        .where('revoked_at', 'is', null)
        .orderBy('created_at', 'desc')
        .execute();
      const list: TokenInfo[] = rows.map((r) => ({ id: r.jti, name: r.label, kind: r.kind, createdAt: r.created_at, expiresAt: r.expires_at, lastUsedAt: r.last_used_at }));
      return c.json({ tokens: list, current: c.get('caller').jti });
    })
    .post(
      '/',
      validator('json', (v) => ({ name: asString(asObject(v ?? {}), 'name', { optional: true, max: 100 }) })),
      async (c) => {
        const caller = c.get('caller');
        const name = c.req.valid('json').name || 'personal access token';
        const t = await tokens.issue({ accountId: caller.accountId, kind: 'pat', email: caller.email, label: name });
        return c.json({ token: t.token, id: t.jti, name }, 201);
      },
    )
    .delete('/:id', async (c) => {
      const id = c.req.param('id');
      if (!(await tokens.revoke(id, c.get('caller').accountId))) throw new TunnError('NOT_FOUND', `you have no active token with id "${id}"; see \`tunn token list\``);
      return c.json({ revoked: true as const, id });
    });
}

/**
 * POST /v1/auth/token/revoke. Body { token } or { jti } names the token to revoke; an empty
 * body revokes the token the request is made with (what `tunn logout` sends). Only the
 * caller's own tokens can be revoked.
 */
export function revokeRoute(identity: Identity) {
  const { tokens } = identity;
  return new Hono<ApiEnv>().use(requireBearer(identity)).post(
    '/',
    validator('json', (v) => {
      const o = asObject(v ?? {});
      return { token: asString(o, 'token', { optional: true, max: 4000 }), jti: asString(o, 'jti', { optional: true, max: 100 }) };
    }),
    async (c) => {
      const caller = c.get('caller');
      const body = c.req.valid('json');
      let jti = body.jti || caller.jti;
      if (body.token) {
        let claims: { jti?: unknown };
        try {
          claims = decodeJwt(body.token);
        } catch {
          throw new TunnError('INVALID_INPUT', '"token" is not a tunn token (expected a JWT)');
        }
        if (typeof claims.jti !== 'string') throw new TunnError('INVALID_INPUT', '"token" carries no jti');
        jti = claims.jti;
      }
      // Revoking by jti scoped to the caller's account: a token of another account, or a forged
      // one whose jti is unknown, revokes nothing.
      if (!(await tokens.revoke(jti, caller.accountId))) throw new TunnError('NOT_FOUND', 'no active token of yours matches; it may already be revoked');
      return c.json({ revoked: true as const, id: jti });
    },
  );
}
