import { createHash, timingSafeEqual } from 'node:crypto';

// Cross-site request forgery defences for every state-changing POST of tunn's own pages
// (the relay's login, consent, device and logout forms; /.tunn/logout on a tunnel host).
//
// The relay zone is not a public suffix, so every tunnel (grafana.tunn.example.com) is
// same-site with the relay and with its sibling tunnels: SameSite=Lax cookies go along with
// their form posts. So a post is refused unless it comes from the very origin of the page:
//   - Origin, when sent, must be exactly that origin ("null", from a sandboxed frame or a
//     data: URL, is refused);
//   - Sec-Fetch-Site, when sent, must be same-origin (or none: typed by the user);
// and a signed-in form also carries a token bound to the session cookie, which a sibling
// tunnel cannot read.

/** Why a POST is refused, or undefined when it comes from `expectedOrigin` (or from no browser at all). */
export function crossOriginPost(headers: { origin: readonly string[]; secFetchSite: readonly string[] }, expectedOrigin: string): string | undefined {
  const expected = canonicalOrigin(expectedOrigin);
  for (const o of headers.origin) {
    if (o.trim() === 'null') return 'the form was posted from a page without an origin (a sandboxed frame or a local file)';
    if (expected === undefined || canonicalOrigin(o.trim()) !== expected) return `the form was posted from another site (${o.trim().slice(0, 200)})`;
  }
  for (const s of headers.secFetchSite) {
    const v = s.trim().toLowerCase();
    if (v !== 'same-origin' && v !== 'none') return `the form was posted from another site (Sec-Fetch-Site: ${v.slice(0, 40)})`;
  }
  return undefined;
}

/** What a refused post tells the visitor (with the reason). */
export function refusedPostMessage(reason: string): string {
  return `tunn refused this form because ${reason}. Open the page on this site again and submit the form from there.`;
}

/**
 * The form token of a session: derived from the cookie's secret (not from the session id the
 * store keeps), so only a page that can read the cookie's owner's session can show it.
 */
export function formToken(sessionCookieValue: string): string {
  return createHash('sha256').update('tunn form token\0').update(sessionCookieValue).digest('base64url');
}

/** Whether `token` is the form token of the session whose cookie value is given. */
export function checkFormToken(sessionCookieValue: string | undefined, token: string | undefined | null): boolean {
  if (!sessionCookieValue || !token) return false;
  const want = Buffer.from(formToken(sessionCookieValue));
  const got = Buffer.from(token);
  return got.length === want.length && timingSafeEqual(got, want);
}

function canonicalOrigin(origin: string): string | undefined {
  try {
    const u = new URL(origin);
    return u.origin === 'null' ? undefined : u.origin;
  } catch {
    return undefined;
  }
}
