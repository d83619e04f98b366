import type { Context, MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { bearerFrom, refusedTokenOwner, verifyBearer, type BearerIdentity } from '../auth/bearer.ts';
import type { Identity } from '../auth/identity.ts';
import { errorMessage, isTunnError, TunnError, type TunnErrorCode } from '../lib/errors.ts';
import { cookieCaller } from './session-auth.ts';

// Shared plumbing of the API: the Hono env, error bodies, Bearer auth, the client address.

export interface ApiBindings {
  /** The relay passes the client's address when it calls app.fetch(request, { clientIp }). */
  clientIp?: string;
  /** Set by @hono/node-server. */
  incoming?: { socket?: { remoteAddress?: string } };
}

export interface ApiEnv {
  Bindings: ApiBindings;
  Variables: { caller: BearerIdentity; requestId: string };
}

/** Error body of every /v1 endpoint: { error: { code, message } }. */
export interface ApiErrorBody {
  error: { code: string; message: string };
}

const STATUS: Partial<Record<TunnErrorCode, ContentfulStatusCode>> = {
  INVALID_INPUT: 400,
  NAME_INVALID: 400,
  NAME_RESERVED: 400,
  CONFIG_INVALID: 400,
  AUTH_REQUIRED: 401,
  AUTH_INVALID_TOKEN: 401,
  AUTH_TOKEN_REVOKED: 401,
  LOGIN_FAILED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  UNKNOWN_GROUP: 404,
  CONFLICT: 409,
  NAME_TAKEN: 409,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
};

export function statusOf(err: unknown): ContentfulStatusCode {
  if (isTunnError(err)) return STATUS[err.code] ?? 500;
  if (err instanceof HTTPException) return err.status as ContentfulStatusCode;
  return 500;
}

/** The { error: { code, message } } body for any thrown value (internal details are not shown). */
export function errorBody(err: unknown): ApiErrorBody {
  if (isTunnError(err)) return { error: { code: err.code, message: err.message } };
  if (err instanceof HTTPException) return { error: { code: err.status === 401 ? 'AUTH_REQUIRED' : 'INVALID_INPUT', message: err.message || 'bad request' } };
  return { error: { code: 'INTERNAL', message: 'the relay failed to handle this request; the relay log has the details' } };
}

export function clientIp(c: Context<ApiEnv>): string {
  return c.env?.clientIp ?? c.env?.incoming?.socket?.remoteAddress ?? '';
}

/**
 * Requires `Authorization: Bearer <personal access token | agent token>`, or the relay's session
 * cookie from the console's own origin (src/api/session-auth.ts).
 */
export function requireBearer(identity: Identity): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const token = bearerFrom(c.req.header('authorization'));
    if (!token) {
      const session = await cookieCaller(identity, c);
      if (!session) throw new TunnError('AUTH_REQUIRED', 'send Authorization: Bearer <token>; sign in with `tunn login` or create a token with `tunn token create`');
      c.set('caller', session);
      await next();
      return;
    }
    try {
      const caller = await verifyBearer(identity.tokens, identity.store, token);
      c.set('caller', caller);
    } catch (err) {
      // The store is away: not the token's fault (answered 503, no security event).
      if (isTunnError(err, 'UNAVAILABLE')) throw err;
      const revoked = isTunnError(err, 'AUTH_TOKEN_REVOKED');
      await identity.events.record({ kind: revoked ? 'token_revoked_used' : 'token_invalid', ip: clientIp(c), accountId: refusedTokenOwner(err, token), detail: `API ${c.req.method} ${c.req.path}` });
      throw isTunnError(err) ? err : new TunnError('AUTH_INVALID_TOKEN', errorMessage(err));
    }
    await identity.tokens.touch(c.get('caller').jti);
    await next();
  };
}

// Body validation for hono's validator(): small and explicit, with messages naming the field.

export function asObject(v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TunnError('INVALID_INPUT', 'the request body must be a JSON object');
  return v as Record<string, unknown>;
}

export function asString(o: Record<string, unknown>, field: string, opts: { optional?: boolean; max?: number } = {}): string {
  const v = o[field];
  if (v === undefined && opts.optional) return '';
  if (typeof v !== 'string' || (!opts.optional && !v)) throw new TunnError('INVALID_INPUT', `"${field}" must be a non-empty string`);
  if (v.length > (opts.max ?? 1000)) throw new TunnError('INVALID_INPUT', `"${field}" is too long (at most ${opts.max ?? 1000} characters)`);
  return v;
}

export function asStringArray(o: Record<string, unknown>, field: string, opts: { optional?: boolean } = {}): string[] {
  const v = o[field];
  if (v === undefined && opts.optional) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new TunnError('INVALID_INPUT', `"${field}" must be an array of strings`);
  if (v.length > 1000) throw new TunnError('INVALID_INPUT', `"${field}" has too many entries (at most 1000)`);
  return v as string[];
}
