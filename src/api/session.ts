import { Hono } from 'hono';
import { clearSessionCookie, readCookie, sessionCookieName } from '../auth/cookies.ts';
import type { Identity } from '../auth/identity.ts';
import { TunnError } from '../lib/errors.ts';
import { consoleOrigin, CSRF_HEADER, csrfTokenFor, isRelayAdmin, requireCaller } from './caller.ts';
import type { ApiEnv } from './http.ts';

// /v1/session — who the console is signed in as, on which relay, and the CSRF token its
// state-changing calls carry in X-Tunn-Csrf (src/api/caller.ts). DELETE signs the browser out.

export interface SessionInfo {
  email: string;
  accountId: string;
  /** The relay's public URL (the console's origin). */
  relay: string;
  /** How the caller signed in: the browser session (console) or a token (CLI, scripts). */
  via: 'session' | 'token';
  /** The value for the X-Tunn-Csrf header of cookie calls; null for token callers (they need none). */
  csrf: string | null;
  csrfHeader: string;
  /** One of the relay's operators (--admin-email): sees every account's tokens, events and certificates. */
  admin: boolean;
}

export function sessionRoutes(identity: Identity) {
  const cookieName = sessionCookieName(identity.relayUrl.protocol === 'https:');
  return new Hono<ApiEnv>()
    .use(requireCaller(identity))
    .get('/', (c) => {
      const caller = c.get('caller');
      const cookie = caller.via === 'session' ? readCookie(c.req.header('cookie'), cookieName) : undefined;
      const info: SessionInfo = {
        email: caller.email,
        accountId: caller.accountId,
        relay: consoleOrigin(identity, c.req.url),
        via: caller.via,
        csrf: cookie ? csrfTokenFor(cookie) : null,
        csrfHeader: CSRF_HEADER,
        admin: isRelayAdmin(identity, caller.email),
      };
      // The CSRF token is per session: never kept by a cache.
      return c.json(info, 200, { 'cache-control': 'no-store' });
    })
    .delete('/', async (c) => {
      const caller = c.get('caller');
      if (caller.via !== 'session') throw new TunnError('INVALID_INPUT', 'this signs a browser out; a token is revoked with `tunn logout` or DELETE /v1/tokens/<id>');
      const session = await identity.sessions.byId(caller.sessionId);
      if (session) await identity.sessions.revokeFamily(session);
      return c.json({ signedOut: true as const }, 200, { 'set-cookie': clearSessionCookie(identity.relayUrl.protocol === 'https:'), 'cache-control': 'no-store' });
    });
}
