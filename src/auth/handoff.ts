import type { LoginCodes } from './login-codes.ts';
import { safePath } from './return-url.ts';
import { normaliseHost, type Session, type SessionService } from './sessions.ts';

// Cross-domain login. A tunnel host (grafana.tunn.example.com, or a customer's own domain)
// cannot read the relay's cookie, so after sign-in the relay redirects the browser to
//   https://<tunnel host>/.tunn/auth/callback?code=<one-time code>
// The code is bound to that host, good once, for HANDOFF_TTL_SECONDS; the gate exchanges it
// for a session of that host (a child of the relay session) and sets the host's own cookie.
//
// A hand-off tells the tunnel's owner who the visitor is, so the relay asks the visitor
// once per (relay session, host) before the first one (src/api/consent.ts). The answer is
// remembered in the store, where no tunnel can forge it: the host session a hand-off creates
// is the record that the visitor agreed to go there under this relay session.

export const HANDOFF_TTL_SECONDS = 30;
export const CALLBACK_PATH = '/.tunn/auth/callback';

export class Handoff {
  readonly #codes: LoginCodes;
  readonly #sessions: SessionService;

  constructor(opts: { codes: LoginCodes; sessions: SessionService }) {
    this.#codes = opts.codes;
    this.#sessions = opts.sessions;
  }

  /** Whether the visitor already agreed (in this relay session) to be handed to `host`. */
  async consented(relaySession: Session, host: string): Promise<boolean> {
    return this.#sessions.hasChild(relaySession, host);
  }

  /**
   * The URL that hands `relaySession` over to the return URL's host. The URL went through
   * checkReturnUrl(), and the visitor agreed (consented() or the consent form).
   */
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
    // Same host only: a path, never "//other.host" (the one path check of return-url.ts).
    const returnPath = (typeof c.data.returnPath === 'string' ? safePath(c.data.returnPath) : undefined) ?? '/';
    return { cookieValue, session, returnPath };
  }
}
