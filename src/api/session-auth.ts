import type { Context } from 'hono';
import type { BearerIdentity } from '../auth/bearer.ts';
import { readCookie, sessionCookieName } from '../auth/cookies.ts';
import { checkFormToken, crossOriginPost, formToken } from '../auth/csrf.ts';
import type { Identity } from '../auth/identity.ts';
import { TunnError } from '../lib/errors.ts';
import type { ApiEnv } from './http.ts';

// The web console's access to /v1: the relay's own session cookie (SameSite=Lax, kept so for the
// custom-domain hand-off), accepted only from the console's own origin. Tunnels under the relay's
// zone are same-site with it, so SameSite does not stop a sibling tunnel's page from posting
// here; three checks do:
//   - the request comes from the very origin of the relay (Sec-Fetch-Site: same-origin, or
//     failing that an Origin equal to the relay's); a cross-site or sibling-site call is refused
//     before the session is looked at;
//   - every state-changing call carries X-Tunn-Csrf, the token derived from the cookie's secret
//     (src/auth/csrf.ts formToken, the same as the sign-in forms' token), which only a page of
//     the relay's own origin can learn (from GET /v1/session);
//   - /v1 sends no CORS headers, so no other origin can read an answer.
// Bearer tokens work as before and take precedence over a cookie.

/** The header that carries the console's CSRF token on state-changing /v1 calls. */
export const CSRF_HEADER = 'x-tunn-csrf';

const SAFE_METHODS = new Set(['GET', 'HEAD']);

/**
 * The origin of the relay's own pages for this request: the relay's URL, or in --dev also the
 * relay's host over the plain-HTTP port, where the same pages are served.
 */
export function ownOrigin(identity: Identity, requestUrl: string): string {
  const own = new URL(requestUrl);
  return identity.options.dev && own.hostname === identity.relayUrl.hostname ? own.origin : identity.relayUrl.origin;
}

/** The relay session cookie's value on this request, if any. */
export function sessionCookieOf(identity: Identity, c: Context<ApiEnv>): string | undefined {
  return readCookie(c.req.header('cookie'), sessionCookieName(identity.relayUrl.protocol === 'https:'));
}

/** The console's CSRF token for a session cookie value (what GET /v1/session hands the console). */
export function csrfTokenFor(cookieValue: string): string {
  return formToken(cookieValue);
}

/**
 * The caller signed in by the relay's session cookie, or undefined when the request carries no
 * such cookie. Throws FORBIDDEN for a call from another origin or a state-changing call without
 * the CSRF token, AUTH_REQUIRED for a cookie whose session expired or was signed out.
 */
export async function cookieCaller(identity: Identity, c: Context<ApiEnv>): Promise<BearerIdentity | undefined> {
  const cookie = sessionCookieOf(identity, c);
  if (!cookie) return undefined;
  const h = c.req.raw.headers;
  const origin = h.get('origin');
  const site = h.get('sec-fetch-site');
  const expected = ownOrigin(identity, c.req.url);
  // Sec-Fetch-Site is what every current browser sends; without it, an Origin must name the relay.
  const reason = crossOriginPost({ origin: origin === null ? [] : [origin], secFetchSite: site === null ? [] : [site] }, expected) ?? (site === null && origin === null ? 'it carries neither Sec-Fetch-Site nor Origin' : site?.trim().toLowerCase() === 'none' ? 'it was not made by a page (Sec-Fetch-Site: none)' : undefined);
  if (reason) throw new TunnError('FORBIDDEN', `the relay's sign-in cookie is accepted on /v1 only from the relay's own console, and this call was refused because ${reason.replace(/^the form was posted/, 'it was sent')}; scripts use a token (Authorization: Bearer, \`tunn token create\`)`);
  if (!SAFE_METHODS.has(c.req.method) && !checkFormToken(cookie, h.get(CSRF_HEADER))) {
    throw new TunnError('FORBIDDEN', `this ${c.req.method} carries no valid ${CSRF_HEADER} header (the console's token from GET /v1/session); nothing was changed: reload the console and try again`);
  }
  const session = await identity.sessions.lookup(cookie, identity.relayUrl.host);
  if (!session) throw new TunnError('AUTH_REQUIRED', 'your sign-in has expired or you signed out: sign in again at /login');
  return { accountId: session.accountId, email: session.email, jti: '', kind: 'session' };
}
