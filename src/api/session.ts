import { Hono } from 'hono';
import type { Identity } from '../auth/identity.ts';
import { requireBearer, type ApiEnv } from './http.ts';
import { csrfTokenFor, sessionCookieOf } from './session-auth.ts';

/**
 * GET /v1/session: who the console is signed in as, which relay this is, the CSRF token for its
 * state-changing calls (null for a bearer caller: it needs none) and whether the caller is one of
 * the relay's operators (--admin-email). Never cached: it carries the token.
 */
export function sessionRoutes(identity: Identity) {
  const admins = new Set((identity.options.adminEmails ?? []).map((e) => e.toLowerCase()));
  return new Hono<ApiEnv>().use(requireBearer(identity)).get('/', (c) => {
    const caller = c.get('caller');
    const cookie = caller.kind === 'session' ? sessionCookieOf(identity, c) : undefined;
    return c.json({ email: caller.email, relay: identity.relayUrl.origin, csrf: cookie ? csrfTokenFor(cookie) : null, admin: admins.has(caller.email.toLowerCase()) }, 200, { 'cache-control': 'no-store' });
  });
}
