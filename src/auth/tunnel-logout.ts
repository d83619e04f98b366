import { clearSessionCookie, readCookie, sessionCookieName } from './cookies.ts';
import { checkFormToken, crossOriginPost, formToken, refusedPostMessage } from './csrf.ts';
import type { GateDecision, GateRequest } from './gate.ts';
import { esc, PAGE_HEADERS, page } from './html.ts';
import type { SessionService } from './sessions.ts';

// /.tunn/logout on a tunnel host. Signing out of a tunnel host signs out of tunn in this
// browser (the relay session and every host session handed off from it), so it must not be
// reachable by a sibling tunnel: every tunnel is same-site with its siblings, so an <img> or
// a form there would carry this host's SameSite=Lax cookie. Hence:
//   GET  shows a page with a button (changes nothing);
//   POST signs out, only from this very origin (csrf.ts) and with the session's form token,
//        which rides in the form's action URL: the gate sees request heads, not bodies.

export const LOGOUT_PATH = '/.tunn/logout';

/** The form that signs out (and, with `switchAccount`, goes on to the relay's login). */
export function logoutForm(cookieValue: string, label: string, switchAccount = false): string {
  const q = new URLSearchParams({ csrf: formToken(cookieValue), ...(switchAccount ? { switch: '1' } : {}) });
  return `<form method="post" action="${LOGOUT_PATH}?${esc(q.toString())}"><button type="submit">${esc(label)}</button></form>`;
}

export interface LogoutContext {
  /** The relay's sessions, or (TLS ending at an agent) the agent's questions to the relay about them. */
  sessions: Pick<SessionService, 'lookup' | 'revokeFamily'>;
  /** The relay's login URL that brings the visitor back to this host's `/`. */
  loginUrl: string;
}

/** Answers GET, HEAD and POST of /.tunn/logout (any other method is refused by the caller). */
export async function tunnelLogout(req: GateRequest, q: URLSearchParams, ctx: LogoutContext): Promise<GateDecision> {
  const cookieValue = readCookie(cookieLine(req), sessionCookieName(req.secure));
  const session = await ctx.sessions.lookup(cookieValue, req.host);
  const switchAccount = q.get('switch') === '1';
  const signIn = `<p><a class="button" href="${esc(ctx.loginUrl)}">Sign in</a></p>`;
  if (req.method !== 'POST') {
    if (!session) return html(req, 200, 'Sign out of tunn', `<p>You are not signed in to ${esc(req.host)}.</p>${signIn}`);
    const what = switchAccount ? 'Sign out and switch account' : 'Sign out';
    return html(req, 200, 'Sign out of tunn', `<p>You are signed in to ${esc(req.host)} as <strong>${esc(session.email)}</strong>. Signing out here signs you out of tunn in this browser.</p>${logoutForm(cookieValue!, what, switchAccount)}`);
  }
  const origin = `${req.secure ? 'https' : 'http'}://${req.host}`;
  const refused = crossOriginPost({ origin: values(req, 'origin'), secFetchSite: values(req, 'sec-fetch-site') }, origin);
  if (refused) return html(req, 403, 'Refused', `<p>${esc(refusedPostMessage(refused))}</p>`);
  const clear: [string, string][] = [['set-cookie', clearSessionCookie(req.secure)]];
  if (session) {
    if (!checkFormToken(cookieValue, q.get('csrf'))) {
      return html(req, 403, 'This form has expired', `<p>The sign-out form was not sent from this browser's current tunn session. You are still signed in.</p><p><a class="button" href="${LOGOUT_PATH}">Sign out</a></p>`);
    }
    // The whole family: otherwise the relay would sign the visitor straight back in, and
    // "switch account" could not work.
    await ctx.sessions.revokeFamily(session);
  }
  if (switchAccount) return { kind: 'respond', status: 303, headers: [['location', ctx.loginUrl], ['cache-control', 'no-store'], ...clear], body: '' };
  return html(req, 200, 'Signed out', `<p>You are signed out of tunn.</p>${signIn}`, clear);
}

function html(req: GateRequest, status: number, title: string, body: string, extra: [string, string][] = []): GateDecision {
  return { kind: 'respond', status, headers: [...PAGE_HEADERS, ...extra], body: page(title, body, { status, requestId: req.requestId }) };
}

function values(req: GateRequest, name: string): string[] {
  return req.headers.filter(([n]) => n === name).map(([, v]) => v);
}

function cookieLine(req: GateRequest): string | undefined {
  const parts = values(req, 'cookie');
  return parts.length ? parts.join('; ') : undefined;
}
