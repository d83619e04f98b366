// The request-target of a visitor's request, checked before it is routed (RFC 9112 §3.2).
// The relay routes by Host; an origin behind it with virtual hosts picks the site by the
// authority of an absolute-form target instead (RFC 9112 §3.2.2). So an absolute target that
// names another host than Host could reach a private site through a public tunnel: the relay
// sends origin-form only, and refuses an absolute target whose authority is not the Host.
//
// A path that begins with two slashes (or a slash and a backslash, which WHATWG URL parsers
// read as one) is refused too: a Node app resolving `new URL(req.url, base)` reads
// `//secret.zone/x` as the host secret.zone, path /x. Refused rather than collapsed to one
// slash: rewriting would silently change the path the app sees (a signed URL, a route that
// tells `//a` from `/a`), while a 400 says what was wrong and what to send instead.

const AMBIGUOUS_PATH = 'The request path starts with "//" (or "/\\"), which many servers read as another host name. Send a path with a single leading slash, such as /index.html.';

/** Whether an origin-form path could be read as a scheme-relative URL (`//host/…`, `/\host/…`). */
function schemeRelative(path: string): boolean {
  return path.length > 1 && path[0] === '/' && (path[1] === '/' || path[1] === '\\');
}

export type TargetCheck = { ok: true; target: string } | { ok: false; why: string };

/**
 * The origin-form target to forward for `target`, or why the request is refused. `host` is
 * the (already validated) Host header; `secure`: the visitor came over TLS (Host's default port).
 */
export function originFormTarget(method: string, target: string, host: string, secure: boolean): TargetCheck {
  if (target.startsWith('/')) return schemeRelative(target) ? { ok: false, why: AMBIGUOUS_PATH } : { ok: true, target };
  // asterisk-form (OPTIONS *) and authority-form (CONNECT, which the gateway refuses itself).
  if ((target === '*' && method === 'OPTIONS') || method === 'CONNECT') return { ok: true, target };
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/.exec(target);
  if (!m) return { ok: false, why: 'The request target must be a path such as /index.html.' };
  const [, scheme, authority, rest] = m as unknown as [string, string, string, string];
  const s = scheme.toLowerCase();
  if (s !== 'http' && s !== 'https') return { ok: false, why: `The request target is a ${scheme}: URL; send a path such as /index.html with the host in the Host header.` };
  if (authority.includes('@')) return { ok: false, why: 'The request target carries user information (user@host); send a path such as /index.html with the host in the Host header.' };
  const a = hostAndPort(authority, s === 'https' ? 443 : 80);
  const h = hostAndPort(host, secure ? 443 : 80);
  if (!a || !h || a.host !== h.host || a.port !== h.port) {
    return { ok: false, why: 'The absolute URL in the request line names another host than the Host header (RFC 9112 §3.2.2). Send the path only, with the host in the Host header.' };
  }
  const path = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  if (schemeRelative(path)) return { ok: false, why: AMBIGUOUS_PATH };
  return { ok: true, target: path };
}

function hostAndPort(authority: string, defaultPort: number): { host: string; port: number } | undefined {
  const host = normalizeHost(authority);
  if (host === null) return undefined;
  const m = /:(\d{1,5})$/.exec(authority.trim());
  const bracketed = authority.trim().startsWith('[');
  const explicit = m && (!bracketed || authority.trim().lastIndexOf(']') < authority.trim().lastIndexOf(':')) ? Number(m[1]) : undefined;
  return { host, port: explicit ?? defaultPort };
}

/** Lower-cased host without port, or null when malformed. */
export function normalizeHost(h: string): string | null {
  let host = h.trim().toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0) return null;
    return host.slice(0, end + 1);
  }
  const colon = host.lastIndexOf(':');
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(host.slice(colon + 1))) return null;
    host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (!/^[a-z0-9.-]+$/.test(host) || host.length === 0 || host.length > 253) return null;
  return host;
}
