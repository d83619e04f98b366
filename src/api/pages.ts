import type { Context, MiddlewareHandler } from 'hono';
import { attemptCookieName, clearSessionCookie, readCookie, serializeSessionCookie, sessionCookieName, type AttemptCookie } from '../auth/cookies.ts';
import { checkFormToken, formToken, refusedPostMessage } from '../auth/csrf.ts';
import { foreignOrigin } from './caller.ts';
import { checkReturnUrl, HOME, type ReturnPolicy, type ReturnTarget } from '../auth/return-url.ts';
import { esc, PAGE_HEADERS, page } from '../auth/html.ts';
import { newRequestId } from '../lib/page.ts';
import type { Identity } from '../auth/identity.ts';
import type { OidcSecrets } from '../auth/oidc.ts';
import type { Session } from '../auth/sessions.ts';
import { ensureAccount } from '../store/accounts.ts';
import { clientIp, type ApiEnv } from './http.ts';

// Helpers shared by the relay's own pages (login, logout, device confirmation).

export type PageContext = Context<ApiEnv>;

export function render(c: PageContext, status: number, title: string, body: string, opts: { banner?: string; headers?: [string, string][] } = {}): Response {
  const h = new Headers([...PAGE_HEADERS]);
  for (const [k, v] of opts.headers ?? []) h.append(k, v);
  // The id the request-id middleware (app.ts) logs this answer under.
  const requestId = c.get('requestId') ?? newRequestId();
  return new Response(page(title, body, { banner: opts.banner, status, requestId }), { status, headers: h });
}

export function redirectTo(location: string, headers: [string, string][] = []): Response {
  const h = new Headers([['location', location], ['cache-control', 'no-store']]);
  for (const [k, v] of headers) h.append(k, v);
  return new Response(null, { status: 302, headers: h });
}

/**
 * A short-lived cookie of one login attempt (OIDC binding, magic-link attempt). Path=/ and no
 * Domain because `__Host-` (used over HTTPS, src/auth/cookies.ts) requires both.
 */
export function attemptCookie(identity: Identity, base: AttemptCookie, value: string, maxAge: number): string {
  const secure = identity.relayUrl.protocol === 'https:';
  return [`${attemptCookieName(base, secure)}=${value}`, 'Path=/', `Max-Age=${maxAge}`, 'HttpOnly', 'SameSite=Lax', ...(secure ? ['Secure'] : [])].join('; ');
}

/** The value of the login-attempt cookie `base` (only the `__Host-` one over HTTPS). */
export function readAttemptCookie(identity: Identity, c: PageContext, base: AttemptCookie): string | undefined {
  return cookie(c, attemptCookieName(base, identity.relayUrl.protocol === 'https:'));
}

export function cookie(c: PageContext, name: string): string | undefined {
  return readCookie(c.req.header('cookie'), name);
}

/** The path of the consent page for a hand-off to `url` (GET /login shows it to a signed-in visitor). */
export function consentPath(url: URL): string {
  return `/login?return=${encodeURIComponent(url.href)}`;
}

export function pages(identity: Identity) {
  const secure = identity.relayUrl.protocol === 'https:';
  const relayHost = identity.relayUrl.host;
  const returnPolicy: ReturnPolicy = { relayUrl: identity.relayUrl, isServedHost: identity.options.isServedHost, strict: secure && identity.options.dev !== true };

  function sessionCookie(c: PageContext): string | undefined {
    return cookie(c, sessionCookieName(secure));
  }

  async function currentSession(c: PageContext): Promise<Session | undefined> {
    return identity.sessions.lookup(sessionCookie(c), relayHost);
  }

  /** The checked return target, or undefined; `refused` when one was given but is not safe to follow. */
  function returnUrl(raw: string | undefined): { target?: ReturnTarget; refused: boolean } {
    if (!raw) return { refused: false };
    const target = checkReturnUrl(raw, returnPolicy);
    return { target, refused: !target };
  }

  function refusedPage(c: PageContext): Response {
    return render(c, 400, 'Cannot continue there', '<p>The return address is not a page of this relay or a site it serves (or it is written in a way browsers could read as another site), so tunn will not send you there.</p><p><a class="button" href="/login">Sign in to tunn</a></p>');
  }

  /**
   * Where a signed-in browser goes next (every redirect after sign-in is built here): the
   * relay path; a hand-off to another host the visitor already agreed to in this session; or
   * the consent page that asks first.
   */
  async function continueTo(session: Session, target: ReturnTarget | undefined): Promise<string> {
    if (!target) return '/login';
    if (target.kind === 'relay') return target.path;
    if (await identity.handoff.consented(session, target.url.host)) return identity.handoff.start(session, target.url);
    return consentPath(target.url);
  }

  /** Signs `email` in on the relay (creating the account on first login) and continues. */
  async function finishLogin(c: PageContext, email: string, rawReturn: string | undefined, extraHeaders: [string, string][] = [], idp?: { source: string; groups: string[]; secrets?: OidcSecrets }): Promise<Response> {
    const acct = await ensureAccount(identity.store, email, identity.clock.now());
    const { cookieValue, session } = await identity.sessions.create({ accountId: acct.id, email: acct.email, host: relayHost, ip: clientIp(c), userAgent: c.req.header('user-agent') });
    // IdP groups the sign-in brought (OIDC with --oidc-groups-claim), shared by the session's family.
    if (idp) await identity.idpGroups.recordLogin(session.id, idp.source, idp.groups, idp.secrets);
    // A return value kept since the login started is checked again; refused now → HOME.
    const { target, refused } = returnUrl(rawReturn);
    return redirectTo(await continueTo(session, refused ? HOME : target), [['set-cookie', serializeSessionCookie(secure, cookieValue, identity.sessions.ttlSeconds)], ...extraHeaders]);
  }

  /**
   * Refuses form posts that do not come from the relay's own pages (src/auth/csrf.ts): the
   * one check of every state-changing POST here, signed in or not.
   */
  const sameOrigin: MiddlewareHandler<ApiEnv> = async (c, next) => {
    if (c.req.method === 'POST') {
      const reason = foreignOrigin(identity, c);
      if (reason) return render(c, 403, 'Refused', `<p>${esc(refusedPostMessage(reason))}</p>`);
    }
    await next();
  };

  /** The hidden form-token field of the signed-in browser's forms. */
  function tokenField(c: PageContext): string {
    const v = sessionCookie(c);
    return v ? hidden('csrf', formToken(v)) : '';
  }

  /** Whether a signed-in form post carries this session's form token. */
  function hasFormToken(c: PageContext, form: Record<string, unknown>): boolean {
    return checkFormToken(sessionCookie(c), typeof form.csrf === 'string' ? form.csrf : undefined);
  }

  function staleFormPage(c: PageContext, again: string): Response {
    return render(c, 403, 'This form has expired', `<p>The form was not sent from this browser's current tunn session (it may be from an older sign-in, or from another site). Nothing was changed.</p><p><a class="button" href="${esc(again)}">Try again</a></p>`);
  }

  function signedOutHeaders(): [string, string][] {
    return [['set-cookie', clearSessionCookie(secure)]];
  }

  function hidden(name: string, value: string | undefined): string {
    return value ? `<input type="hidden" name="${esc(name)}" value="${esc(value)}">` : '';
  }

  return { currentSession, returnUrl, refusedPage, continueTo, finishLogin, sameOrigin, tokenField, hasFormToken, staleFormPage, signedOutHeaders, hidden, secure, relayHost };
}
