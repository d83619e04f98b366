import type { Context, MiddlewareHandler } from 'hono';
import { bearerFrom, refusedTokenOwner, verifyBearer } from '../auth/bearer.ts';
import { sessionCookieName, readCookie } from '../auth/cookies.ts';
import { checkFormToken, crossOriginPost, formToken } from '../auth/csrf.ts';
import type { Identity } from '../auth/identity.ts';
import { errorMessage, isTunnError, TunnError } from '../lib/errors.ts';
import { clientIp, type ApiEnv } from './http.ts';

// Who may call /v1, and how a browser may.
//
// - `Authorization: Bearer <token>` (the CLI, scripts): as before; no cookie is looked at.
// - The relay's session cookie (the web console on the relay's own host). The cookie is
//   SameSite=Lax and every tunnel under the relay's zone is same-site with the console, so
//   SameSite is no defence here. A cookie call is accepted only from the console's own origin
//   (Origin, when sent, is exactly it; Sec-Fetch-Site, when sent, is same-origin or none), and
//   every state-changing one also carries `X-Tunn-Csrf`: the token `GET /v1/session` returns,
//   derived from the cookie's secret, which no other origin can read.
// - No CORS: /v1 never sends Access-Control-Allow-* (app.ts answers preflights with a refusal),
//   so a page on another origin cannot read an answer even where a request goes out.

/** The header a cookie-authenticated state-changing call carries (its value from GET /v1/session). */
export const CSRF_HEADER = 'x-tunn-csrf';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The origin of the relay's own pages and console for this request: the relay's URL, or in
 * --dev also the relay's host over the plain-HTTP port, where the same pages are served (a
 * browser cannot set Host for another site).
 */
export function consoleOrigin(identity: Identity, requestUrl: string): string {
  const own = new URL(requestUrl);
  return identity.options.dev && own.hostname === identity.relayUrl.hostname ? own.origin : identity.relayUrl.origin;
}

/** Why a browser request is not from the relay's own origin (src/auth/csrf.ts), or undefined when it is (or comes from no browser). */
export function foreignOrigin(identity: Identity, c: Context<ApiEnv>): string | undefined {
  const h = c.req.raw.headers;
  return crossOriginPost({ origin: present(h.get('origin')), secFetchSite: present(h.get('sec-fetch-site')) }, consoleOrigin(identity, c.req.url));
}

/** Whether `email` is one of the relay's operators (--admin-email): they see every account's tokens, events and certificates. */
export function isRelayAdmin(identity: Identity, email: string): boolean {
  const e = email.toLowerCase();
  return (identity.options.adminEmails ?? []).some((a) => a.toLowerCase() === e);
}

/** The CSRF token of a console session (the same derivation as the relay's form token: one secret, one check). */
export function csrfTokenFor(sessionCookieValue: string): string {
  return formToken(sessionCookieValue);
}

/** Requires a bearer token, or the console's session cookie with the checks above. */
export function requireCaller(identity: Identity): MiddlewareHandler<ApiEnv> {
  const cookieName = sessionCookieName(identity.relayUrl.protocol === 'https:');
  const relayHost = identity.relayUrl.host;
  return async (c, next) => {
    const authorization = c.req.header('authorization');
    const token = bearerFrom(authorization);
    if (token) {
      let b: Awaited<ReturnType<typeof verifyBearer>>;
      try {
        b = await verifyBearer(identity.tokens, identity.store, token);
      } catch (err) {
        // The store is away: not the token's fault (answered 503, no security event).
        if (isTunnError(err, 'UNAVAILABLE')) throw err;
        const revoked = isTunnError(err, 'AUTH_TOKEN_REVOKED');
        await identity.events.record({ kind: revoked ? 'token_revoked_used' : 'token_invalid', ip: clientIp(c), accountId: refusedTokenOwner(err, token), detail: `API ${c.req.method} ${c.req.path}` });
        throw isTunnError(err) ? err : new TunnError('AUTH_INVALID_TOKEN', errorMessage(err));
      }
      c.set('caller', { via: 'token', accountId: b.accountId, email: b.email, jti: b.jti, kind: b.kind });
      await identity.tokens.touch(b.jti);
      return next();
    }
    const cookie = readCookie(c.req.header('cookie'), cookieName);
    if (cookie === undefined || authorization) {
      throw new TunnError('AUTH_REQUIRED', 'send Authorization: Bearer <token>; sign in with `tunn login` or create a token with `tunn token create`');
    }
    // The cookie is looked at only for calls from the console's own origin.
    const origin = consoleOrigin(identity, c.req.url);
    const foreign = foreignOrigin(identity, c);
    if (foreign) {
      throw new TunnError('FORBIDDEN', `the API refused this call made with the browser's tunn session because ${foreign.replace('the form was posted', 'it came')}: the session works only from the console at ${origin}; scripts and other sites use a token (Authorization: Bearer)`);
    }
    const session = await identity.sessions.lookup(cookie, relayHost);
    if (!session) throw new TunnError('AUTH_REQUIRED', `the browser's tunn session has expired or was signed out: sign in again at ${origin}/login`);
    if (!SAFE_METHODS.has(c.req.method) && !checkFormToken(cookie, c.req.header(CSRF_HEADER))) {
      throw new TunnError('FORBIDDEN', `a change made with the browser's tunn session must carry the ${CSRF_HEADER} header with the csrf value from GET /v1/session (reload the console); nothing was changed`);
    }
    c.set('caller', { via: 'session', accountId: session.accountId, email: session.email, sessionId: session.id });
    return next();
  };
}

/**
 * Whether the credential this request was accepted with still holds (not revoked, not expired,
 * session not signed out): long-lived answers (the tunnel events stream) ask it again as they go.
 */
export function credentialCheck(identity: Identity, c: Context<ApiEnv>): () => Promise<boolean> {
  const token = bearerFrom(c.req.header('authorization'));
  const cookie = readCookie(c.req.header('cookie'), sessionCookieName(identity.relayUrl.protocol === 'https:'));
  return async () => {
    try {
      if (token) return (await verifyBearer(identity.tokens, identity.store, token)) !== undefined;
      return (await identity.sessions.lookup(cookie, identity.relayUrl.host)) !== undefined;
    } catch (err) {
      // The store being away says nothing about the credential: keep going until it answers.
      if (isTunnError(err, 'UNAVAILABLE')) return true;
      return false;
    }
  };
}

function present(v: string | null): string[] {
  return v === null ? [] : [v];
}
