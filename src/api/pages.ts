import type { Context, MiddlewareHandler } from 'hono';
import { clearSessionCookie, readCookie, serializeSessionCookie, sessionCookieName } from '../auth/cookies.ts';
import { checkReturnUrl } from '../auth/handoff.ts';
import { esc, PAGE_HEADERS, page } from '../auth/html.ts';
import type { Identity } from '../auth/identity.ts';
import type { OidcSecrets } from '../auth/oidc.ts';
import type { Session } from '../auth/sessions.ts';
import { ensureAccount } from '../store/accounts.ts';
import { clientIp, type ApiEnv } from './http.ts';

// Helpers shared by the relay's own pages (login, logout, device confirmation).

export type PageContext = Context<ApiEnv>;

export function render(c: PageContext, status: number, title: string, body: string, opts: { banner?: string; headers?: [string, string][] } = {}): Response {
  const h = new Headers(PAGE_HEADERS);
  for (const [k, v] of opts.headers ?? []) h.append(k, v);
  return new Response(page(title, body, { banner: opts.banner }), { status, headers: h });
}

export function redirectTo(location: string, headers: [string, string][] = []): Response {
  const h = new Headers([['location', location], ['cache-control', 'no-store']]);
  for (const [k, v] of headers) h.append(k, v);
  return new Response(null, { status: 302, headers: h });
}

/** A short-lived cookie of one login attempt (OIDC binding, magic-link attempt), scoped to its path. */
export function attemptCookie(identity: Identity, name: string, value: string, path: string, maxAge: number): string {
  return [`${name}=${value}`, `Path=${path}`, `Max-Age=${maxAge}`, 'HttpOnly', 'SameSite=Lax', ...(identity.relayUrl.protocol === 'https:' ? ['Secure'] : [])].join('; ');
}

export function cookie(c: PageContext, name: string): string | undefined {
  return readCookie(c.req.header('cookie'), name);
}

export function pages(identity: Identity) {
  const secure = identity.relayUrl.protocol === 'https:';
  const relayHost = identity.relayUrl.host;

  async function currentSession(c: PageContext): Promise<Session | undefined> {
    return identity.sessions.lookup(cookie(c, sessionCookieName(secure)), relayHost);
  }

  /** The checked return URL, or undefined; `refused` when one was given but is not ours. */
  function returnUrl(raw: string | undefined): { url?: URL; refused: boolean } {
    if (!raw) return { refused: false };
    const url = checkReturnUrl(raw, identity.relayUrl, identity.options.isServedHost);
    return { url, refused: !url };
  }

  function refusedPage(c: PageContext): Response {
    return render(c, 400, 'Cannot continue there', '<p>The return address is not a site this relay serves, so tunn will not send you there.</p><p><a class="button" href="/login">Sign in to tunn</a></p>');
  }

  /** Where a signed-in browser goes next: the relay path, or a hand-off to a tunnel host. */
  async function continueTo(session: Session, url: URL | undefined): Promise<string> {
    if (!url || url.host === relayHost) return url ? url.pathname + url.search : '/login';
    return identity.handoff.start(session, url);
  }

  /** Signs `email` in on the relay (creating the account on first login) and continues. */
  async function finishLogin(c: PageContext, email: string, rawReturn: string | undefined, extraHeaders: [string, string][] = [], idp?: { source: string; groups: string[]; secrets?: OidcSecrets }): Promise<Response> {
    const acct = await ensureAccount(identity.store, email, identity.clock.now());
    const { cookieValue, session } = await identity.sessions.create({ accountId: acct.id, email: acct.email, host: relayHost, ip: clientIp(c), userAgent: c.req.header('user-agent') });
    // IdP groups the sign-in brought (OIDC with --oidc-groups-claim), shared by the session's family.
    if (idp) await identity.idpGroups.recordLogin(session.id, idp.source, idp.groups, idp.secrets);
    const { url } = returnUrl(rawReturn);
    return redirectTo(await continueTo(session, url), [['set-cookie', serializeSessionCookie(secure, cookieValue, identity.sessions.ttlSeconds)], ...extraHeaders]);
  }

  /**
   * Refuses cross-origin form posts. The session cookie is SameSite=Lax, so a cross-site POST
   * would not carry it anyway; this also covers the pre-login forms.
   */
  const sameOrigin: MiddlewareHandler<ApiEnv> = async (c, next) => {
    if (c.req.method === 'POST') {
      const origin = c.req.header('origin');
      const site = c.req.header('sec-fetch-site');
      if ((origin && origin !== 'null' && origin !== identity.relayUrl.origin) || site === 'cross-site') {
        return render(c, 403, 'Refused', '<p>This form was posted from another site.</p>');
      }
    }
    await next();
  };

  function signedOutHeaders(): [string, string][] {
    return [['set-cookie', clearSessionCookie(secure)]];
  }

  function hidden(name: string, value: string | undefined): string {
    return value ? `<input type="hidden" name="${esc(name)}" value="${esc(value)}">` : '';
  }

  return { currentSession, returnUrl, refusedPage, continueTo, finishLogin, sameOrigin, signedOutHeaders, hidden, secure, relayHost };
}
