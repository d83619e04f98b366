import { Hono } from 'hono';
import { esc } from '../auth/html.ts';
import type { Identity } from '../auth/identity.ts';
import type { Session } from '../auth/sessions.ts';
import type { ApiEnv } from './http.ts';
import { consentPath, redirectTo, render, type PageContext, type pages } from './pages.ts';

// Consent before a hand-off. Handing a visitor to another host tells that host's owner who
// the visitor is (Tunn-User-Email), so a link to /login?return=https://<someone's tunnel>/
// must not do it silently. The first hand-off to each host in a relay session asks
// "Continue to grafana.… as alice@…?"; the answer is a form post (same origin, with the
// session's form token), and the hand-off session it creates is the remembered consent
// (Handoff.consented).

export const CONTINUE_PATH = '/login/continue';

type Pages = ReturnType<typeof pages>;

/** The page that asks a signed-in visitor before the first hand-off to `url`'s host. */
export function consentPage(c: PageContext, p: Pages, session: Session, url: URL): Response {
  const host = esc(url.host);
  const email = esc(session.email);
  return render(
    c,
    200,
    `Continue to ${url.host}?`,
    `<p>You are signed in to tunn as <strong>${email}</strong>.</p>
<p>If you continue, <strong>${host}</strong> learns that you are <strong>${email}</strong>: tunn sends your email address with each of your requests to it. Continue only if you meant to open this site.</p>
<form method="post" action="${CONTINUE_PATH}">${p.hidden('return', url.href)}${p.tokenField(c)}<button type="submit">Continue as ${email}</button></form>
<p class="muted">tunn asks once per site each time you sign in. <a href="/login">Cancel</a> · <a href="/logout">Not you? Sign out</a></p>`,
  );
}

export function consentRoutes(identity: Identity, p: Pages) {
  return new Hono<ApiEnv>().post(CONTINUE_PATH, async (c) => {
    const f = await c.req.parseBody();
    const raw = typeof f.return === 'string' ? f.return : undefined;
    const { target, refused } = p.returnUrl(raw);
    if (refused) return p.refusedPage(c);
    const session = await p.currentSession(c);
    if (!session) return redirectTo(target ? `/login?return=${encodeURIComponent(raw!)}` : '/login');
    if (!p.hasFormToken(c, f)) return p.staleFormPage(c, target?.kind === 'host' ? consentPath(target.url) : '/login');
    if (target?.kind !== 'host') return redirectTo(await p.continueTo(session, target));
    return redirectTo(await identity.handoff.start(session, target.url));
  });
}
