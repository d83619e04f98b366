import { decodeJwt } from 'jose';
import { Hono } from 'hono';
import { z } from 'zod';
import type { Identity } from '../auth/identity.ts';
import { TunnError } from '../lib/errors.ts';
import { isRelayAdmin, requireCaller } from './caller.ts';
import type { ApiEnv } from './http.ts';
import { jsonBody, params, query } from './validate.ts';

// /v1/tokens — `tunn token list|create|revoke` and the console's Tokens page — and
// POST /v1/auth/token/revoke (seed 001).

export interface TokenInfo {
  id: string;
  name: string;
  kind: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  /** The account the token acts for (shown to relay admins listing every account's tokens). */
  email: string;
}

/** A row of the tokens table (joined with its account) as the API names it: every token list's `--json` speaks these names. */
export function tokenInfo(r: { jti: string; label: string; kind: string; created_at: string; expires_at: string | null; last_used_at: string | null; email: string }): TokenInfo {
  return { id: r.jti, name: r.label, kind: r.kind, createdAt: r.created_at, expiresAt: r.expires_at, lastUsedAt: r.last_used_at, email: r.email };
}

const listQuery = z.object({ all: z.enum(['0', '1']).optional() });
const createBody = z.object({ name: z.string().max(100).optional() });
const idParam = z.object({ id: z.string().min(1).max(100) });
const revokeBody = z.object({ token: z.string().max(4000).optional(), jti: z.string().max(100).optional() });

export function tokenRoutes(identity: Identity) {
  const { tokens, store } = identity;
  return new Hono<ApiEnv>()
    .use(requireCaller(identity))
    .get('/', query(listQuery), async (c) => {
      const caller = c.get('caller');
      // Relay admins (--admin-email) may list every account's tokens with ?all=1.
      const all = c.req.valid('query').all === '1';
      if (all && !isRelayAdmin(identity, caller.email)) throw new TunnError('FORBIDDEN', "only the relay's operators (--admin-email) can list every account's tokens");
      let q = store.db
        .selectFrom('tokens')
        .innerJoin('accounts', 'accounts.id', 'tokens.account_id')
        .select(['tokens.jti', 'tokens.label', 'tokens.kind', 'tokens.created_at', 'tokens.expires_at', 'tokens.last_used_at', 'accounts.email'])
        .where('tokens.kind', 'in', ['pat', 'agent'])
        .where('tokens.revoked_at', 'is', null);
      if (!all) q = q.where('tokens.account_id', '=', caller.accountId);
      const rows = await q.orderBy('tokens.created_at', 'desc').execute();
      const list: TokenInfo[] = rows.map(tokenInfo);
      return c.json({ tokens: list, current: caller.via === 'token' ? caller.jti : null });
    })
    .post('/', jsonBody(createBody), async (c) => {
      const caller = c.get('caller');
      const name = c.req.valid('json').name || 'personal access token';
      const t = await tokens.issue({ accountId: caller.accountId, kind: 'pat', email: caller.email, label: name });
      // Shown once: no cache (browser, proxy) may keep it.
      return c.json({ token: t.token, id: t.jti, name }, 201, { 'cache-control': 'no-store' });
    })
    .delete('/:id', params(idParam), async (c) => {
      const { id } = c.req.valid('param');
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
  return new Hono<ApiEnv>().use(requireCaller(identity)).post('/', jsonBody(revokeBody), async (c) => {
    const caller = c.get('caller');
    const body = c.req.valid('json');
    let jti = body.jti || (caller.via === 'token' ? caller.jti : undefined);
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
    if (!jti) throw new TunnError('INVALID_INPUT', 'name the token to revoke: { "jti": "<id from GET /v1/tokens>" } or { "token": "<the token>" }');
    // Revoking by jti scoped to the caller's account: a token of another account, or a forged
    // one whose jti is unknown, revokes nothing.
    if (!(await tokens.revoke(jti, caller.accountId))) throw new TunnError('NOT_FOUND', 'no active token of yours matches; it may already be revoked');
    return c.json({ revoked: true as const, id: jti });
  });
}
