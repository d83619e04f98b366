// tunn's own cookie, on the relay host and on every tunnel host. Host-only (no Domain), so a
// tunnel's cookie never reaches another tunnel or the relay. Over HTTPS it is named with the
// `__Host-` prefix, which browsers accept only with Secure, Path=/ and no Domain — so no
// sibling host can plant one.

export function sessionCookieName(secure: boolean): string {
  return secure ? '__Host-tunn' : 'tunn';
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
 * The Cookie line without tunn's cookies (both names, so a `tunn` cookie planted on an HTTPS
 * host is dropped too); undefined when nothing is left.
 */
export function stripCookies(cookieHeader: string, names: readonly string[]): string | undefined {
  const kept = cookieHeader
    .split(';')
    .map((p) => p.trim())
    .filter((p) => {
      if (!p) return false;
      const eq = p.indexOf('=');
      return !names.includes((eq < 0 ? p : p.slice(0, eq)).trim());
    });
  return kept.length ? kept.join('; ') : undefined;
}

export function serializeSessionCookie(secure: boolean, value: string, maxAgeSeconds: number): string {
  return [`${sessionCookieName(secure)}=${value}`, 'Path=/', `Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`, 'HttpOnly', 'SameSite=Lax', ...(secure ? ['Secure'] : [])].join('; ');
}

export function clearSessionCookie(secure: boolean): string {
  return serializeSessionCookie(secure, '', 0);
}
