import type { Clock } from '../lib/clock.ts';
import { isTunnError } from '../lib/errors.ts';
import type { BasicCredentials } from './basic-auth.ts';
import { basicAuthStep, cookieLine, header, html, isBrowser, json, loginUrl, ownPathStep, rateLimitStep, refuse, refused, signIn, splitTarget, unavailable } from './gate-steps.ts';
import { clearSessionCookie, readCookie, sessionCookieName } from './cookies.ts';
import type { EventLog } from './events.ts';
import type { Handoff } from './handoff.ts';
import { esc } from './html.ts';
import { parseIpAllowList, type IpAllowList } from './ip-allow.ts';
import type { IdpGroups, IdpLookup } from './idp-groups.ts';
import type { Policy } from './policy.ts';
import type { RateLimiter } from './rate-limit.ts';
import type { Session, SessionService } from './sessions.ts';
import type { TokenService } from './tokens.ts';
import { LOGOUT_PATH, logoutForm } from './tunnel-logout.ts';
import { bearerFrom, verifyBearer } from './bearer.ts';
import type { Store } from '../store/store.ts';
import { principalKey, type Principal } from './revocation.ts';
import { IdentityOutageCache } from './outage-cache.ts';

// The gateway contract. The relay's gateway parses each request head on a tunnel host and
// calls gate.check() before anything reaches the agent. The gate answers either
//   allow:   forward, after applying the header edits (see GateDecision), or
//   respond: send this response and do not forward (discard any request body or close).
//
// Order (each step only runs if the previous one passed):
//   1. IP allow-list          403             (before anything else, even tunn's own paths)
//   2. rate limits            429 + Retry-After (per client IP on this tunnel, then per tunnel)
//   3. /.tunn/* paths         hand-off callback (GET), logout (GET shows a form; POST, same
//                             origin with the session's form token, signs out: tunnel-logout.ts)
//   4. basic auth             401 + WWW-Authenticate: Basic
//   5. public tunnel          allow (no store access, no identity)
//   6. identity               Bearer <PAT|agent token> or the host's session cookie
//                             none: browsers → 302 to the relay's /login?return=<this URL>;
//                                   other clients → 401 JSON + WWW-Authenticate: Bearer
//   7. policy                 403 (HTML naming the email, with "switch account", or JSON)
//   8. allow                  + Tunn-User-Email, Tunn-Jwt-Assertion
//
// With --basic-auth the Authorization header carries the tunnel password, so identity comes
// from the session cookie only (no Bearer on such tunnels).
//
// "Browser" means: GET or HEAD, not an upgrade, no Authorization header, and an Accept header
// that mentions text/html. Everything else is an API client and gets status codes it can act
// on instead of a redirect to an HTML login page.

export interface GateRequest {
  method: string;
  /** The request target: path plus query string. */
  path: string;
  /** The Host header value (with port if not the default). */
  host: string;
  /** The visitor reached the relay over TLS. */
  secure: boolean;
  clientIp: string;
  /** Lower-case names, in the order received. */
  headers: [name: string, value: string][];
  upgrade: boolean;
  /** The id of the relay's log line for this request; refusal pages show it. */
  requestId?: string;
}

export interface TunnelPolicy {
  tunnelId: string;
  ownerAccountId: string;
  ownerEmail: string;
  /** `-a` entries as given (validate them at registration with Policy.validate). */
  allow: string[];
  public: boolean;
  basicAuth?: BasicCredentials;
  allowIps?: string[];
  /** Requests per minute (burst of the same size). */
  rateLimit?: { perIp?: number; perTunnel?: number };
  /** The tunnel's hostname (its grants are kept by host). */
  host?: string;
  /** Registered with --for: `allow` is empty and the entries are grants of this registration. */
  grantRef?: string;
}

/**
 * How to apply `allow`: first delete every header whose (lower-case) name is in
 * `removeHeaders` (credentials the gate consumed: basic auth, a tunn bearer token), then
 * append `setHeaders` in order. The gateway itself strips, on every request, inbound copies
 * of the headers it reserves (Tunn-*, X-Forwarded-*, … in any spelling) and tunn's cookies.
 * `principal` names the credential the request was allowed with (absent on public tunnels):
 * the relay keeps it with the connection and cuts the connection when the credential is
 * revoked (src/relay/live-revocation.ts).
 */
export type GateDecision =
  | { kind: 'allow'; email?: string; principal?: Principal; setHeaders: [string, string][]; removeHeaders: string[] }
  | { kind: 'respond'; status: number; headers: [string, string][]; body: string | Buffer; refusal?: GateRefusal };

/**
 * Why a request was not let through, for the tunnel owner's request log and the relay's
 * metrics (set on every `respond` that refuses; absent on tunn's own paths).
 */
export interface GateRefusal {
  reason: 'ip' | 'rate-limit' | 'basic-auth' | 'sign-in' | 'token' | 'policy' | 'unavailable';
  /** The signed-in visitor (policy refusals). */
  who?: string;
  detail?: string;
}


export const USER_EMAIL_HEADER = 'tunn-user-email';
export const ASSERTION_HEADER = 'tunn-jwt-assertion';
export { LOGOUT_PATH };

export interface GateOptions {
  /** The relay's public origin, e.g. https://tunn.example.com (login lives there). */
  relayUrl: string;
  store: Store;
  tokens: TokenService;
  sessions: SessionService;
  handoff: Handoff;
  policy: Policy;
  events: EventLog;
  rateLimiter: RateLimiter;
  clock: Clock;
  /** IdP groups (idp: entries, the assertion's `groups` claim); absent: none configured. */
  idpGroups?: IdpGroups;
  /** Lifetime of Tunn-Jwt-Assertion; default 60 s. */
  assertionTtlSeconds?: number;
  /** How long into a database outage each credential's last answer is reused (then 503); default 30 s. */
  identityOutageWindowMs?: number;
  /** Unexpected failures (the gate then answers 503). */
  onError?: (err: unknown) => void;
  /** A visitor was refused because IdP groups could not be confirmed: the causes, for the relay's log (the visitor sees only what to do). */
  onIdpUnconfirmed?: (e: { requestId?: string; email: string; host: string; details: string[] }) => void;
}

/** A decision made from identity (allowed, or refused for the credential or by policy): worth reusing in an outage. */
function identityAnswer(d: GateDecision): boolean {
  if (d.kind === 'allow') return d.principal !== undefined;
  const r = d.refusal?.reason;
  return r === 'token' || r === 'sign-in' || r === 'policy';
}

type Identity = { accountId: string; email: string; via: 'session'; session: Session } | { accountId: string; email: string; via: 'bearer'; jti: string; kid?: string };


export class Gate {
  readonly #o: GateOptions;
  readonly #relay: URL;
  readonly #assertionTtl: number;
  #ipLists = new WeakMap<readonly string[], IpAllowList>();
  // Tunn-Jwt-Assertion per (credential, host), reused for the first half of its lifetime so
  // the allow path does not sign on every request.
  #assertions = new Map<string, { jwt: string; until: number }>();
  // Each credential's last identity answer, used while the database is away (outage-cache.ts).
  readonly #outage: IdentityOutageCache<GateDecision>;

  constructor(opts: GateOptions) {
    this.#o = opts;
    this.#relay = new URL(opts.relayUrl);
    this.#assertionTtl = opts.assertionTtlSeconds ?? 60;
    this.#outage = new IdentityOutageCache({ clock: opts.clock, windowMs: opts.identityOutageWindowMs });
  }

  /**
   * Decides one request. Never throws: if the decision cannot be made (the store is down, an
   * allow-list that skipped validation), it fails closed with a 503 and reports to onError.
   */
  async check(req: GateRequest, t: TunnelPolicy): Promise<GateDecision> {
    const key = t.public ? undefined : this.#credentialKey(req, t);
    try {
      const d = await this.#check(req, t);
      if (key !== undefined && identityAnswer(d)) this.#outage.answered(key, d);
      return d;
    } catch (err) {
      this.#o.onError?.(err);
      if (!isTunnError(err, 'UNAVAILABLE')) return unavailable(req, 'the relay log');
      // The database is away: the credential's last answer for at most the window, then 503.
      const cached = this.#outage.unavailable(key);
      if (cached) return cached.kind === 'allow' ? { ...cached, setHeaders: [...cached.setHeaders], removeHeaders: [...cached.removeHeaders] } : cached;
      return unavailable(req, 'the relay log', true);
    }
  }

  /**
   * The credentials of the allow answers kept for a database outage, and a way to drop those
   * revoked: live revocation (src/relay/live-revocation.ts) checks them on every sweep.
   */
  readonly outageCache = {
    principals: (): Principal[] => this.#outage.values().flatMap((d) => (d.kind === 'allow' && d.principal ? [d.principal] : [])),
    forget: (revoked: ReadonlySet<string>): void => this.#outage.forget((d) => d.kind === 'allow' && d.principal !== undefined && revoked.has(principalKey(d.principal))),
    /** Principal key → when the database last answered "allow" for it (a live connection let in during an outage is trusted as long as that answer). */
    answeredAt: (): Map<string, number> => {
      const m = new Map<string, number>();
      for (const e of this.#outage.entries()) if (e.decision.kind === 'allow' && e.decision.principal) m.set(principalKey(e.decision.principal), e.at);
      return m;
    },
  };

  #credentialKey(req: GateRequest, t: TunnelPolicy): string | undefined {
    const bearer = t.basicAuth ? undefined : bearerFrom(header(req, 'authorization'));
    const credential = bearer ? `b:${bearer}` : (() => {
      const v = readCookie(cookieLine(req), sessionCookieName(req.secure));
      return v ? `s:${v}` : undefined;
    })();
    return credential && IdentityOutageCache.key(credential, req.host, t.tunnelId);
  }

  async #check(req: GateRequest, t: TunnelPolicy): Promise<GateDecision> {
    // 1. IP allow-list.
    if (t.allowIps && t.allowIps.length) {
      let list = this.#ipLists.get(t.allowIps);
      if (!list) {
        list = parseIpAllowList(t.allowIps);
        this.#ipLists.set(t.allowIps, list);
      }
      if (!list.allows(req.clientIp)) {
        void this.#o.events.record({ kind: 'ip_denied', ip: req.clientIp, tunnel: t.tunnelId, accountId: t.ownerAccountId });
        return refused(refuse(req, 403, 'IP_NOT_ALLOWED', `your IP address (${req.clientIp}) is not allowed to reach this tunnel`, {
          title: 'Your network is not allowed here',
          body: `<p>This tunnel only accepts visitors from certain IP addresses, and yours (<code>${esc(req.clientIp)}</code>) is not one of them.</p><p>Connect from an allowed network (your office or VPN, for instance), or ask the owner of this tunnel to add your address with <code>--allow-ip</code>.</p>`,
        }), { reason: 'ip', detail: 'not in --allow-ip' });
      }
    }
    // 2. Rate limits.
    const limited = this.#rateLimit(req, t);
    if (limited) return limited;
    const [pathname, query = ''] = splitTarget(req.path);
    // 3. tunn's own paths on the tunnel host.
    if (pathname.startsWith('/.tunn/')) return this.#ownPath(req, t, pathname, new URLSearchParams(query));
    // 4. Basic auth.
    // Inbound identity headers and tunn's cookies are stripped by the gateway on every path,
    // gated or not (src/relay/forward-headers.ts); the gate removes what it consumed.
    const removeHeaders: string[] = [];
    const setHeaders: [string, string][] = [];
    const authz = header(req, 'authorization');
    if (t.basicAuth) {
      const refusal = basicAuthStep(req, t, (e) => void this.#o.events.record(e));
      if (refusal) return refusal;
      removeHeaders.push('authorization');
    }
    const cookies = cookieLine(req);
    // 5. Public tunnels: no identity needed, no store access.
    if (t.public) return { kind: 'allow', setHeaders, removeHeaders };
    // 6. Identity.
    const browser = isBrowser(req);
    let id: Identity | undefined;
    let cookieValue: string | undefined;
    const bearer = t.basicAuth ? undefined : bearerFrom(authz);
    if (bearer) {
      try {
        const b = await verifyBearer(this.#o.tokens, this.#o.store, bearer);
        id = { accountId: b.accountId, email: b.email, via: 'bearer', jti: b.jti, ...(b.kid && { kid: b.kid }) };
        removeHeaders.push('authorization');
      } catch (err) {
        // The store is away: not the token's fault (check() answers 503).
        if (isTunnError(err, 'UNAVAILABLE')) throw err;
        const revoked = isTunnError(err, 'AUTH_TOKEN_REVOKED');
        void this.#o.events.record({ kind: revoked ? 'token_revoked_used' : 'token_invalid', ip: req.clientIp, tunnel: t.tunnelId, accountId: t.ownerAccountId });
        return refused(json(401, revoked ? 'AUTH_TOKEN_REVOKED' : 'AUTH_INVALID_TOKEN', revoked ? 'this token has been revoked; create a new one with `tunn token create`' : 'this token is not valid for this relay; create one with `tunn token create`', [['www-authenticate', `Bearer realm="tunn", error="invalid_token"`]]), { reason: 'token', detail: revoked ? 'revoked token' : 'invalid token' });
      }
    } else {
      const value = readCookie(cookies, sessionCookieName(req.secure));
      const session = value ? await this.#o.sessions.lookup(value, req.host) : undefined;
      if (session) {
        id = { accountId: session.accountId, email: session.email, via: 'session', session };
        cookieValue = value;
      }
      else if (value) {
        // Unknown, tampered, expired or revoked: clear it and start over.
        return refused(this.#signIn(req, browser, [['set-cookie', clearSessionCookie(req.secure)]]), { reason: 'sign-in', detail: 'sign-in expired or revoked' });
      }
    }
    if (!id) return refused(this.#signIn(req, browser, []), { reason: 'sign-in', detail: browser ? 'sent to sign in' : 'not signed in' });
    // 7. Policy. IdP groups are looked up once per request, and only if an idp: entry or the assertion needs them.
    const idp = this.#o.idpGroups?.enabled ? this.#o.idpGroups : undefined;
    let groups: Promise<IdpLookup> | undefined;
    const idpGroups = idp ? (): Promise<IdpLookup> => (groups ??= idp.lookup({ email: id.email, rootSessionId: id.via === 'session' ? (id.session.parentId ?? id.session.id) : undefined, accountId: t.ownerAccountId })) : undefined;
    const answer = await this.#o.policy.decide(t, { email: id.email, idpGroups });
    if (!answer.allowed) {
      const detail = answer.unconfirmedDetail?.length ? answer.unconfirmedDetail : undefined;
      if (detail) this.#o.onIdpUnconfirmed?.({ requestId: req.requestId, email: id.email, host: req.host, details: detail });
      void this.#o.events.record({ kind: 'visitor_denied', ip: req.clientIp, email: id.email, tunnel: t.tunnelId, accountId: t.ownerAccountId, detail: detail ? `${detail.join('; ')}${req.requestId ? ` (request ${req.requestId})` : ''}` : undefined });
      return refused(denied(req, id.email, browser, answer.unconfirmed, cookieValue), { reason: 'policy', who: id.email, detail: answer.unconfirmed?.length ? 'IdP group not confirmed' : undefined });
    }
    // 8. Allow.
    const known = idpGroups ? (await idpGroups()).groups : undefined;
    setHeaders.push([USER_EMAIL_HEADER, id.email], [ASSERTION_HEADER, await this.#assertion(req, t, id, known)]);
    const principal: Principal =
      id.via === 'session'
        ? { via: 'session', sessionId: id.session.id, rootSessionId: id.session.parentId ?? id.session.id, accountId: id.accountId, email: id.email }
        : { via: 'token', jti: id.jti, accountId: id.accountId, email: id.email, ...(id.kid && { kid: id.kid }) };
    return { kind: 'allow', email: id.email, principal, setHeaders, removeHeaders };
  }

  #rateLimit(req: GateRequest, t: TunnelPolicy): GateDecision | undefined {
    return rateLimitStep(req, t, this.#o.rateLimiter, (e) => void this.#o.events.record(e));
  }

  async #ownPath(req: GateRequest, t: TunnelPolicy, pathname: string, q: URLSearchParams): Promise<GateDecision> {
    return ownPathStep(req, pathname, q, {
      sessions: this.#o.sessions,
      loginUrl: this.#loginUrl(req, '/'),
      now: this.#o.clock.now(),
      redeem: async (code) => {
        const done = await this.#o.handoff.complete(code, req.host, { ip: req.clientIp, userAgent: header(req, 'user-agent') });
        return done && { cookieValue: done.cookieValue, expiresAt: done.session.expiresAt, returnPath: done.returnPath };
      },
      onBadCode: () => void this.#o.events.record({ kind: 'login_failed', ip: req.clientIp, tunnel: t.tunnelId, accountId: t.ownerAccountId, detail: 'hand-off code unknown, used, expired or for another host' }),
    });
  }

  #signIn(req: GateRequest, browser: boolean, extra: [string, string][]): GateDecision {
    return signIn(this.#relay, req, browser, extra);
  }

  #loginUrl(req: GateRequest, target: string): string {
    return loginUrl(this.#relay, req, target);
  }

  async #assertion(req: GateRequest, t: TunnelPolicy, id: Identity, groups: string[] | undefined): Promise<string> {
    const aud = `${req.secure ? 'https' : 'http'}://${req.host}`;
    // The groups are part of the key: a membership change gets a new assertion at once; so is
    // the signing key: after a rotation (seen at once through NOTIFY in a cluster) new assertions use the new key.
    const key = `${this.#o.tokens.signingKid ?? ''}\0${id.via === 'session' ? id.session.id : id.jti}\0${aud}\0${t.tunnelId}\0${groups?.join('\n') ?? ''}`;
    const now = this.#o.clock.now();
    const hit = this.#assertions.get(key);
    if (hit && hit.until > now) return hit.jwt;
    const { token } = await this.#o.tokens.issue({ accountId: id.accountId, kind: 'assertion', email: id.email, ttlSeconds: this.#assertionTtl, record: false, extra: { aud, tunnel: t.tunnelId, ...(groups ? { groups } : {}) } });
    if (this.#assertions.size > 10_000) this.#assertions.clear();
    this.#assertions.set(key, { jwt: token, until: now + (this.#assertionTtl * 1000) / 2 });
    return token;
  }
}

/** 403 for a signed-in visitor the policy refused; says why when IdP membership could not be confirmed. */
function denied(req: GateRequest, email: string, browser: boolean, unconfirmed: string[] | undefined, cookieValue: string | undefined): GateDecision {
  // Signing out is a same-origin form post with the session's token (tunnel-logout.ts).
  const switchAccount = (label: string): string => (cookieValue ? logoutForm(cookieValue, label, true) : `<p><a class="button" href="${LOGOUT_PATH}?switch=1">${label}</a></p>`);
  if (!browser) {
    return json(403, 'FORBIDDEN', unconfirmed?.length ? `${email} is not allowed to reach this tunnel unless an identity-provider group confirms it: ${unconfirmed.join('; ')}` : `${email} is not allowed to reach this tunnel; ask its owner to add you with -a`);
  }
  if (unconfirmed?.length) {
    return html(
      req,
      403,
      'Your groups could not be confirmed',
      `<p>You are signed in as <strong>${esc(email)}</strong>. Access to <strong>${esc(req.host)}</strong> depends on a group at your identity provider, and tunn could not confirm it:</p>
<ul>${unconfirmed.map((u) => `<li>${esc(u)}</li>`).join('')}</ul>
<p>tunn does not let anyone in while it cannot check.</p>
${switchAccount('Sign in again')}`,
    );
  }
  return html(
    req,
    403,
    'You do not have access',
    `<p>You are signed in as <strong>${esc(email)}</strong>, and this account is not allowed to reach <strong>${esc(req.host)}</strong>.</p>
<p>Ask the owner of this tunnel to add you, or sign in with another account.</p>
${switchAccount('Switch account')}`,
  );
}
