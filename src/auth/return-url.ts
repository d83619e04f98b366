// The one check for where a browser may be sent after sign-in, sign-out or a hand-off.
// Every sign-in method (OIDC, magic link, device, dev login) and every redirect built from a
// `return` value goes through checkReturnUrl(); a path on a tunnel host after a hand-off goes
// through safePath(). The answer is either a path on the relay that no browser can read as
// another host, or a URL of a host this relay serves; anything else is refused, and a caller
// that must redirect anyway sends the browser to HOME.

export interface ReturnPolicy {
  /** The relay's public origin. */
  relayUrl: URL;
  /** Whether a hostname (lower case, no port, no trailing dot) is a live tunnel, a zone host or a registered custom domain. */
  isServedHost: (hostname: string) => boolean;
  /**
   * A production relay (HTTPS, no --dev): another host's URL must be https on the relay's
   * port, so a hand-off code never travels in clear or to a port the relay does not own.
   */
  strict: boolean;
}

export type ReturnTarget =
  /** A path (and query) on the relay itself, safe as a Location header. */
  | { kind: 'relay'; path: string }
  /** Another host this relay serves: a hand-off (and consent) comes first. Its path is safe. */
  | { kind: 'host'; url: URL };

/** Where a refused or unusable return value sends the browser. */
export const HOME: ReturnTarget = { kind: 'relay', path: '/' };

// Raw controls, spaces and backslashes: browsers drop tabs and newlines and read `\` as `/`,
// so "/\t/evil.example" and "/\evil.example" are "//evil.example" to them.
const UNSAFE_CHARS = /[\x00-\x20\x7f\\]/;
const MAX_DECODES = 4;

/**
 * `raw` (a path with an optional query) when no reader can take it for another host: it
 * starts with one `/`, and neither it nor its path decoded again and again (`%2f`, `%5c`,
 * `%09`, `%252f`…) starts with `//` or `/\` or holds a control character or backslash.
 * Undefined otherwise.
 */
export function safePath(raw: string): string | undefined {
  if (!raw.startsWith('/') || raw.startsWith('//') || UNSAFE_CHARS.test(raw)) return undefined;
  const q = raw.indexOf('?');
  let path = q < 0 ? raw : raw.slice(0, q);
  for (let i = 0; ; i++) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      return undefined; // a malformed escape: some reader will guess, so do not send it
    }
    if (decoded === path) break;
    if (i === MAX_DECODES) return undefined; // still encoded after several rounds: built to fool a decoder
    path = decoded;
    if (path.startsWith('//') || UNSAFE_CHARS.test(path)) return undefined;
  }
  return raw;
}

/**
 * Where `raw` may send the browser: a relative path is taken on the relay; an absolute URL
 * must be http(s), without credentials, naming the relay or a host it serves. Undefined
 * when it is absent or refused (an open redirect, a scheme-relative or backslash shape, a
 * host this relay does not serve).
 */
export function checkReturnUrl(raw: string | undefined | null, policy: ReturnPolicy): ReturnTarget | undefined {
  if (!raw || UNSAFE_CHARS.test(raw)) return undefined;
  if (raw.startsWith('/')) {
    const path = safePath(raw);
    if (!path) return undefined;
    const u = parse(path, policy.relayUrl);
    return u && u.origin === policy.relayUrl.origin ? relayTarget(u) : undefined;
  }
  // Absolute: exactly "http://" or "https://", so "https:/evil", "https:evil" and
  // "https:/\evil" (which URL parsers repair into a host) never get that far.
  if (!/^https?:\/\/[^/]/i.test(raw)) return undefined;
  const u = parse(raw);
  if (!u || (u.protocol !== 'https:' && u.protocol !== 'http:') || u.username || u.password) return undefined;
  const hostname = u.hostname.replace(/\.$/, '');
  if (hostname === policy.relayUrl.hostname) return relayTarget(u);
  if (!policy.isServedHost(hostname)) return undefined;
  if (policy.strict && (u.protocol !== policy.relayUrl.protocol || u.port !== policy.relayUrl.port)) return undefined;
  const path = safePath(u.pathname + u.search);
  if (!path) return undefined;
  u.hash = '';
  return { kind: 'host', url: u };
}

/** The Location for a target: the relay path, or the host's URL (only after a hand-off). */
export function targetHref(t: ReturnTarget): string {
  return t.kind === 'relay' ? t.path : t.url.href;
}

function relayTarget(u: URL): ReturnTarget | undefined {
  const path = safePath(u.pathname + u.search);
  return path ? { kind: 'relay', path } : undefined;
}

function parse(raw: string, base?: URL): URL | undefined {
  try {
    return new URL(raw, base);
  } catch {
    return undefined;
  }
}
