import { hc, type ClientResponse } from 'hono/client';
import type { ApiApp } from './app.ts';
import type { ClientErrorStatusCode, ServerErrorStatusCode } from 'hono/utils/http-status';
import type { ApiErrorBody } from './http.ts';

// The one typed client of /v1, shared by the CLI (src/cli/relay-api.ts) and the web console
// (web/): `hc<ApiApp>` knows every route's path, input (json, query, param) and output. This
// file imports the server only as types, so a browser bundle gets hono's small client alone.

export interface ApiClientOptions {
  /** The transport (the CLI's trusts --relay-ca and resolves *.localhost; the console's is the browser's, with its cookie). */
  fetch?: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
  /** Sent with every call: Authorization for a token, X-Tunn-Csrf for the console's cookie session. */
  headers?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);
}

export function createApiClient(baseUrl: string, opts: ApiClientOptions = {}) {
  return hc<ApiApp>(baseUrl, { fetch: opts.fetch, headers: opts.headers });
}

export type ApiClient = ReturnType<typeof createApiClient>;

/**
 * Path parameters, each encoded: hc puts `param` values into the path as they are, so a name
 * with `/`, `?` or `#` would name another route. Every call with `param` goes through this.
 */
export function pathParams<T extends Record<string, string>>(p: T): T {
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, encodeURIComponent(v)])) as T;
}

/** A /v1 answer that is not a success: its status, the API's code and its message (what was wrong and what to do). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** The body of a route's successful answer (routes that declare an error status, e.g. 429, leave it out). */
export type SuccessBody<R> = R extends ClientResponse<infer T, infer S, infer _F> ? ([S] extends [ClientErrorStatusCode | ServerErrorStatusCode] ? never : T) : never;

/** The body of any of a route's answers. */
export type AnyBody<R> = R extends ClientResponse<infer T, infer _S, infer _F> ? T : never;

/**
 * The JSON of a successful answer; an ApiError with the API's code and message otherwise (or
 * one saying the answer was not the API's, e.g. a proxy's HTML page).
 */
export async function apiResult<R extends ClientResponse<unknown, number, string>>(response: R | Promise<R>): Promise<SuccessBody<R>> {
  const res = await response;
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(res.status, 'UNAVAILABLE', `${res.url ? `${res.url.split('?')[0]} answered` : 'the relay answered'} ${res.status} with a body that is not JSON: is it a tunn relay?`);
  }
  if (res.ok) return body as SuccessBody<R>;
  const e = (body as Partial<ApiErrorBody>).error;
  if (e && typeof e === 'object') throw new ApiError(res.status, e.code ?? 'UNAVAILABLE', e.message ?? `HTTP ${res.status}`);
  throw new ApiError(res.status, 'UNAVAILABLE', `HTTP ${res.status}${typeof e === 'string' ? ` ${e}` : ''}`);
}

export type { ApiApp, ApiErrorBody };
export type { CertificateView } from './certificates.ts';
export type { DomainView, VerifyResult } from './domains.ts';
export type { SessionInfo } from './session.ts';
export type { TokenInfo } from './tokens.ts';
export type { TunnelEvents } from './tunnel-events.ts';
export type { TunnelStatus } from './tunnels.ts';
