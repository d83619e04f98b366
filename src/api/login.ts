import { Hono } from 'hono';
import { requireEmail } from '../auth/emails.ts';
import { esc } from '../auth/html.ts';
import type { Identity } from '../auth/identity.ts';
import { MAGIC_VERIFY_PATH } from '../auth/magic-link.ts';
import { errorMessage, isTunnError } from '../lib/errors.ts';
import { targetHref, type ReturnTarget } from '../auth/return-url.ts';
import { consentPage, consentRoutes } from './consent.ts';
import { clientIp, type ApiEnv } from './http.ts';
import type { AttemptCookie } from '../auth/cookies.ts';
import { attemptCookie, pages, readAttemptCookie, redirectTo, render, type PageContext } from './pages.ts';

// The relay's login pages: /login (the methods the operator configured), OIDC and GitHub
// (/login/oidc/:id), email magic links (/login/email), the dev login (/login/dev, only with
// --dev), the consent before a hand-off (consent.ts) and /logout (a form post with the
// session's form token; GET only shows the form).

const ATTEMPT_COOKIE: AttemptCookie = 'tunn_attempt';
const OIDC_COOKIE: AttemptCookie = 'tunn_oidc';
const DEV_BANNER = 'DEV LOGIN: any email, no password. This relay runs with --dev and must not be reachable by anyone else.';

export function loginRoutes(identity: Identity) {
  const p = pages(identity);
  const dev = identity.options.dev === true;

  function form(c: PageContext): Promise<Record<string, string>> {
    return c.req.parseBody().then((b) => Object.fromEntries(Object.entries(b).filter(([, v]) => typeof v === 'string')) as Record<string, string>);
  }

  async function failed(c: PageContext, status: number, message: string, email?: string): Promise<Response> {
    await identity.events.record({ kind: 'login_failed', ip: clientIp(c), email, detail: message });
    return render(c, status, 'Sign-in failed', `<p>${esc(message)}</p><p><a class="button" href="/login">Try again</a></p>`);
  }

  function loginPage(c: PageContext, to: ReturnTarget | undefined): Response {
    const ret = to ? targetHref(to) : undefined;
    const r = ret ? `?return=${encodeURIComponent(ret)}` : '';
    const parts: string[] = [];
    if (to?.kind === 'host') parts.push(`<p class="muted">to continue to <strong>${esc(to.url.host)}</strong></p>`);
    for (const prov of identity.oidc.list()) parts.push(`<p><a class="button" href="/login/oidc/${esc(prov.id)}${esc(r)}">Continue with ${esc(prov.name)}</a></p>`);
    if (identity.magic) {
      parts.push(`<form method="post" action="/login/email"><label>Email<br><input type="email" name="email" required autocomplete="email"></label>${p.hidden('return', ret)}<br><button type="submit">Email me a sign-in link</button></form>`);
    }
    if (dev) {
      parts.push(`<form method="post" action="/login/dev" data-dev-login><label>Email (dev login, no password)<br><input type="email" name="email" required></label>${p.hidden('return', ret)}<br><button type="submit">Sign in (dev)</button></form>`);
    }
    if (parts.length === (to?.kind === 'host' ? 1 : 0)) {
      parts.push('<p>No login method is configured on this relay. Its operator can start it with --oidc-issuer, --google-client-id, --github-client-id, --smtp-url, or --dev for a local try-out.</p>');
    }
    return render(c, 200, 'Sign in to tunn', parts.join('\n'), { banner: dev ? DEV_BANNER : undefined });
  }

  function logoutForm(c: PageContext, ret?: string): string {
    return `<form method="post" action="/logout">${p.hidden('return', ret)}${p.tokenField(c)}<button type="submit">Sign out</button></form>`;
  }

  return new Hono<ApiEnv>()
    .use(p.sameOrigin)
    .get('/login', async (c) => {
      const { target, refused } = p.returnUrl(c.req.query('return'));
      if (refused) return p.refusedPage(c);
      const session = await p.currentSession(c);
      if (session) {
        if (target?.kind === 'host' && !(await identity.handoff.consented(session, target.url.host))) return consentPage(c, p, session, target.url);
        if (target) return redirectTo(await p.continueTo(session, target));
        return render(c, 200, 'Signed in', `<p>You are signed in to tunn as <strong>${esc(session.email)}</strong>.</p>${logoutForm(c)}`);
      }
      return loginPage(c, target);
    })
    .route('/', consentRoutes(identity, p))
    .post('/login/dev', async (c) => {
      // Refused unless the relay runs with --dev: the same 404 as any unknown page.
      if (!dev) return render(c, 404, 'Not found', '<p>The dev login is only available when the relay runs with --dev.</p>');
      const f = await form(c);
      let email: string;
      try {
        email = requireEmail(f.email ?? '');
      } catch (err) {
        return render(c, 400, 'Not an email address', `<p>${esc(errorMessage(err))}</p><p><a class="button" href="/login">Back</a></p>`, { banner: DEV_BANNER });
      }
      if (p.returnUrl(f.return).refused) return p.refusedPage(c);
      return p.finishLogin(c, email, f.return);
    })
    .post('/login/email', async (c) => {
      if (!identity.magic) return render(c, 404, 'Not found', '<p>Email sign-in is not configured on this relay (--smtp-url).</p>');
      const f = await form(c);
      if (p.returnUrl(f.return).refused) return p.refusedPage(c);
      const rl = identity.rateLimiter.take(`login-email\0${clientIp(c)}`, 5);
      if (!rl.ok) return render(c, 429, 'Too many sign-in emails', `<p>Wait ${rl.retryAfterSeconds} s and try again.</p>`, { headers: [['retry-after', String(rl.retryAfterSeconds)]] });
      let sent;
      try {
        sent = await identity.magic.send({ email: f.email ?? '', returnTo: f.return ?? '' });
      } catch (err) {
        if (isTunnError(err, 'INVALID_INPUT')) return render(c, 400, 'Not an email address', `<p>${esc(err.message)}</p><p><a class="button" href="/login">Back</a></p>`);
        identity.options.onError?.(err);
        return render(c, 503, 'Could not send the email', '<p>The relay could not send the sign-in email. Try again later, or tell the operator (the relay log has the SMTP error).</p>');
      }
      return render(c, 200, 'Check your email', `<p>We sent a sign-in link to <strong>${esc(f.email!.trim().toLowerCase())}</strong>. It works once, within ${Math.round(identity.magic.ttlSeconds / 60)} minutes.</p>`, {
        headers: [['set-cookie', attemptCookie(identity, ATTEMPT_COOKIE, sent.attempt, identity.magic.ttlSeconds)]],
      });
    })
    .get(MAGIC_VERIFY_PATH, async (c) => {
      if (!identity.magic) return render(c, 404, 'Not found', '<p>Email sign-in is not configured on this relay.</p>');
      const token = c.req.query('token');
      const link = await identity.magic.peek(token, readAttemptCookie(identity, c, ATTEMPT_COOKIE));
      if (!link) return failed(c, 400, 'This sign-in link has expired or was already used. Ask for a new one.');
      if (link.sameBrowser) {
        const used = await identity.magic.consume(token);
        if (!used) return failed(c, 400, 'This sign-in link has expired or was already used. Ask for a new one.');
        return p.finishLogin(c, used.email, used.returnTo, [['set-cookie', attemptCookie(identity, ATTEMPT_COOKIE, '', 0)]]);
      }
      // Another browser or a mail scanner: confirm first, so a prefetch cannot use the link up.
      return render(c, 200, 'Sign in to tunn?', `<p>Sign in as <strong>${esc(link.email)}</strong>?</p><form method="post" action="${MAGIC_VERIFY_PATH}">${p.hidden('token', token)}<button type="submit">Sign in</button></form>`);
    })
    .post(MAGIC_VERIFY_PATH, async (c) => {
      if (!identity.magic) return render(c, 404, 'Not found', '<p>Email sign-in is not configured on this relay.</p>');
      const f = await form(c);
      const used = await identity.magic.consume(f.token);
      if (!used) return failed(c, 400, 'This sign-in link has expired or was already used. Ask for a new one.');
      return p.finishLogin(c, used.email, used.returnTo);
    })
    .get('/login/oidc/:id', async (c) => {
      const id = c.req.param('id');
      if (!identity.oidc.has(id)) return render(c, 404, 'Not found', `<p>There is no login provider "${esc(id)}" on this relay.</p>`);
      const { target, refused } = p.returnUrl(c.req.query('return'));
      if (refused) return p.refusedPage(c);
      try {
        const started = await identity.oidc.begin(id, target ? targetHref(target) : '');
        return redirectTo(started.url, [['set-cookie', attemptCookie(identity, OIDC_COOKIE, started.binding, 600)]]);
      } catch (err) {
        identity.options.onError?.(err);
        return render(c, 503, 'Sign-in is unavailable', `<p>${esc(errorMessage(err))}</p>`);
      }
    })
    .get('/login/oidc/:id/callback', async (c) => {
      const id = c.req.param('id');
      if (!identity.oidc.has(id)) return render(c, 404, 'Not found', `<p>There is no login provider "${esc(id)}" on this relay.</p>`);
      try {
        const done = await identity.oidc.complete(id, new URL(c.req.url), readAttemptCookie(identity, c, OIDC_COOKIE));
        return p.finishLogin(c, done.email, done.returnTo, [['set-cookie', attemptCookie(identity, OIDC_COOKIE, '', 0)]], done.groups ? { source: id, groups: done.groups, secrets: done.secrets } : undefined);
      } catch (err) {
        if (!isTunnError(err)) identity.options.onError?.(err);
        return failed(c, 401, errorMessage(err));
      }
    })
    .get('/logout', async (c) => {
      // Only shows the form: a GET (an <img>, a prefetch, a link on a sibling tunnel) signs nobody out.
      const { target } = p.returnUrl(c.req.query('return'));
      const session = await p.currentSession(c);
      if (!session) return render(c, 200, 'Sign out of tunn', '<p>You are not signed in.</p><p><a class="button" href="/login">Sign in</a></p>');
      return render(c, 200, 'Sign out of tunn', `<p>You are signed in as <strong>${esc(session.email)}</strong>.</p>${logoutForm(c, target && targetHref(target))}`);
    })
    .post('/logout', async (c) => {
      const f = await form(c);
      const session = await p.currentSession(c);
      if (session) {
        if (!p.hasFormToken(c, f)) return p.staleFormPage(c, '/logout');
        // Signs this browser out everywhere: the relay and every tunnel host it was handed to.
        await identity.sessions.revokeFamily(session);
      }
      const { target } = p.returnUrl(f.return);
      if (target) return redirectTo(`/login?return=${encodeURIComponent(targetHref(target))}`, p.signedOutHeaders());
      return render(c, 200, 'Signed out', '<p>You are signed out of tunn.</p><p><a class="button" href="/login">Sign in</a></p>', { headers: p.signedOutHeaders() });
    });
}
