import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { TokenKind } from '../auth/tokens.ts';
import { isTunnError, type TunnErrorCode } from '../lib/errors.ts';

// Shared plumbing of the API: the Hono env, the caller, error bodies, the client address.

export interface ApiBindings {
  /** The relay passes the client's address when it calls app.fetch(request, { clientIp }). */
  clientIp?: string;
  /** Set by @hono/node-server. */
  incoming?: { socket?: { remoteAddress?: string } };
}

/**
 * Who is calling /v1 (src/api/caller.ts): a bearer token (the CLI, scripts) or the browser's
 * session cookie on the relay's own host (the web console).
 */
export type ApiCaller =
  | { via: 'token'; accountId: string; email: string; jti: string; kind: TokenKind }
  | { via: 'session'; accountId: string; email: string; sessionId: string };

export interface ApiEnv {
  Bindings: ApiBindings;
  Variables: { caller: ApiCaller; requestId: string };
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
