// tunn's own cookie, on the relay host and on every tunnel host. Host-only (no Domain), so a
// tunnel's cookie never reaches another tunnel or the relay. Over HTTPS it is named with the
// `__Host-` prefix, which browsers accept only with Secure, Path=/ and no Domain — so no
// sibling host can plant one.

export function sessionCookieName(secure: boolean): string {
  return secure ? '__Host-tunn' : 'tunn';
}

/** tunn's short-lived cookies that bind a login attempt to the browser that started it. */
export type AttemptCookie = 'tunn_attempt' | 'tunn_oidc';

/**
 * The name of a login-binding cookie: `__Host-` over HTTPS like the session cookie, because a
 * sibling tunnel's origin could otherwise plant one with `Domain=<zone>` and bind the victim's
 * browser to the attacker's login (login CSRF). Plain HTTP (--dev) cannot use the prefix.
 */
export function attemptCookieName(base: AttemptCookie, secure: boolean): string {
  return secure ? `__Host-${base}` : base;
}

/** The value of cookie `name` in a Cookie header line, if present (the first one wins). */
export function readCookie(cookieHeader: string | undefined, name: string): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Whether a cookie name is tunn's: the session cookie (`tunn`, `__Host-tunn`) and the login
 * attempt cookies (`tunn_attempt`, `tunn_oidc`). The whole `tunn` / `tunn_*` namespace is
 * reserved, with or without a `__Host-`/`__Secure-` prefix, in any case (browsers match the
 * prefixes case-insensitively), so a cookie tunn adds later is covered too.
 */
export function isTunnCookie(name: string): boolean {
  return /^(?:__host-|__secure-)?tunn(?:_[\x21-\x7e]*)?$/i.test(name);
}

/**
 * A Cookie line without tunn's cookies; undefined when nothing is left. Every other
 * cookie-pair keeps its bytes (and a line without tunn's cookies comes back as it was).
 */
export function stripTunnCookies(cookieHeader: string): string | undefined {
  const parts = cookieHeader.split(';');
  const kept = parts.filter((p) => {
    const eq = p.indexOf('=');
    return !isTunnCookie((eq < 0 ? p : p.slice(0, eq)).trim());
  });
  if (kept.length === parts.length) return cookieHeader;
  const line = kept.join(';').replace(/^[ \t]+/, '');
  return line.replace(/[ \t;]/g, '') === '' ? undefined : line;
}

export function serializeSessionCookie(secure: boolean, value: string, maxAgeSeconds: number): string {
  return [`${sessionCookieName(secure)}=${value}`, 'Path=/', `Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`, 'HttpOnly', 'SameSite=Lax', ...(secure ? ['Secure'] : [])].join('; ');
}

export function clearSessionCookie(secure: boolean): string {
  return serializeSessionCookie(secure, '', 0);
}
