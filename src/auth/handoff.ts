import type { LoginCodes } from './login-codes.ts';
import { normaliseHost, type Session, type SessionService } from './sessions.ts';

// Cross-domain login. A tunnel host (grafana.tunn.example.com, or a customer's own domain)
// cannot read the relay's cookie, so after sign-in the relay redirects the browser to
//   https://<tunnel host>/.tunn/auth/callback?code=<one-time code>
// The code is bound to that host, good once, for HANDOFF_TTL_SECONDS; the gate exchanges it
// for a session of that host (a child of the relay session) and sets the host's own cookie.

export const HANDOFF_TTL_SECONDS = 30;
export const CALLBACK_PATH = '/.tunn/auth/callback';

/**
 * The return URL if it is safe to send the browser there: http(s), no credentials, and a
 * host this relay serves (the relay itself or `isServedHost(hostname)`). Relative paths are
 * taken on the relay. Anything else → undefined (no open redirect).
 */
export function checkReturnUrl(raw: string | undefined | null, relayUrl: URL, isServedHost: (hostname: string) => boolean): URL | undefined {
  if (!raw) return undefined;
  // Refuse scheme-relative and backslash tricks before the URL parser "fixes" them.
  if (/^\s|[\\\x00-\x1f]/.test(raw)) return undefined;
  if (raw.startsWith('/') && raw.startsWith('//')) return undefined;
  let u: URL;
  try {
    u = raw.startsWith('/') ? new URL(raw, relayUrl) : new URL(raw);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return undefined;
  if (u.username || u.password) return undefined;
  if (u.host === relayUrl.host) return u;
  const hostname = u.hostname.toLowerCase().replace(/\.$/, '');
  if (hostname === relayUrl.hostname) return u;
  return isServedHost(hostname) ? u : undefined;
}

export class Handoff {
  readonly #codes: LoginCodes;
  readonly #sessions: SessionService;

  constructor(opts: { codes: LoginCodes; sessions: SessionService }) {
    this.#codes = opts.codes;
    this.#sessions = opts.sessions;
  }

  /** The URL that hands `relaySession` over to the (already checked) return URL's host. */
  async start(relaySession: Session, returnUrl: URL): Promise<string> {
    const code = await this.#codes.issue({
      purpose: 'handoff',
      host: returnUrl.host,
      ttlSeconds: HANDOFF_TTL_SECONDS,
      accountId: relaySession.accountId,
      email: relaySession.email,
      sessionId: relaySession.id,
      data: { returnPath: returnUrl.pathname + returnUrl.search },
    });
    return `${returnUrl.origin}${CALLBACK_PATH}?code=${encodeURIComponent(code)}`;
  }

  /**
   * Exchanges a code on `host` for a new session of that host; undefined when the code is
   * unknown, used, expired, for another host, or its relay session was revoked meanwhile.
   */
  async complete(code: string | undefined, host: string, client: { ip?: string; userAgent?: string }): Promise<{ cookieValue: string; session: Session; returnPath: string } | undefined> {
    const c = await this.#codes.consume(code, 'handoff', normaliseHost(host));
    if (!c || !c.sessionId) return undefined;
    const parent = await this.#sessions.byId(c.sessionId);
    if (!parent) return undefined;
    const { cookieValue, session } = await this.#sessions.create({ accountId: parent.accountId, email: parent.email, host, ip: client.ip, userAgent: client.userAgent, parent });
    const p = typeof c.data.returnPath === 'string' ? c.data.returnPath : '/';
    // Same host only: a path, never "//other.host".
    const returnPath = p.startsWith('/') && !p.startsWith('//') && !p.startsWith('/\\') ? p : '/';
    return { cookieValue, session, returnPath };
  }
}
