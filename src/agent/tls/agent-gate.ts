import { createHash } from 'node:crypto';
import type { AgentCredential, AgentDecision, DecisionSource } from '../../auth/agent-decisions.ts';
import { bearerFrom } from '../../auth/bearer.ts';
import { clearSessionCookie, readCookie, sessionCookieName } from '../../auth/cookies.ts';
import { ASSERTION_HEADER, USER_EMAIL_HEADER, type GateDecision, type GateRequest, type TunnelPolicy } from '../../auth/gate.ts';
import type { RecordEvent } from '../../auth/events.ts';
import { basicAuthStep, cookieLine, header, isBrowser, acceptsHtml, loginUrl, ownPathStep, rateLimitStep, signIn, splitTarget, unavailable } from '../../auth/gate-steps.ts';
import type { Principal } from '../../auth/revocation.ts';
import type { RateLimiter } from '../../auth/rate-limit.ts';
import type { Clock } from '../../lib/clock.ts';
import { TunnError } from '../../lib/errors.ts';

// The agent's gate, for hosts whose TLS ends at the agent: the relay cannot read those
// requests, so the agent enforces what the relay's gate would (src/auth/gate.ts) with the
// same steps (src/auth/gate-steps.ts), in the same order:
//   rate limits → /.tunn/* (hand-off callback, POST-only logout) → basic auth → public →
//   identity (Bearer token or the host's own cookie) → the relay's decision → allow with
//   Tunn-User-Email and the relay-signed Tunn-Jwt-Assertion.
// The IP allow-list stays at the relay's edge (it sees the visitor's address before routing).
// The relay stays the decision point (groups, revocations, signing keys): the agent asks it
// through a DecisionSource and keeps each answer at most DECISION_TTL_MS, so a group change or
// a revocation bites within that time; when no answer can be had, it lets nobody in (503).

/** How long an answer of the relay is reused (issue 12: "at most 5 s"). */
export const DECISION_TTL_MS = 5_000;

/** What the agent knows of its own tunnel's policy (the relay holds the rest: -a, owner, groups). */
export type AgentTunnelPolicy = Pick<TunnelPolicy, 'tunnelId' | 'public' | 'basicAuth' | 'rateLimit'>;

export interface AgentGateOptions {
  source: DecisionSource;
  /** The relay's public origin (its /login). */
  relayUrl: string;
  clock: Clock;
  rateLimiter: RateLimiter;
  /** How long to wait for the relay's answer before failing closed (default 5 s). */
  decisionTimeoutMs?: number;
  /** Security events (rate limited, bad basic auth, bad hand-off code), with the request they are about: the agent reports them to the relay (serve.ts). */
  record?: (e: RecordEvent, req: GateRequest) => void;
  /** Why a decision could not be had (the agent's log). */
  onError?: (err: unknown) => void;
}

interface Cached {
  at: number;
  decision: AgentDecision;
}

export class AgentGate {
  readonly #o: AgentGateOptions;
  readonly #relay: URL;
  readonly #cache = new Map<string, Cached>();

  constructor(opts: AgentGateOptions) {
    this.#o = opts;
    this.#relay = new URL(opts.relayUrl);
  }

  #recordFor(req: GateRequest): (e: RecordEvent) => void {
    return (e) => this.#o.record?.(e, req);
  }

  /** Decides one request (each request of a kept-alive connection, and each upgrade). Never throws. */
  async check(req: GateRequest, t: AgentTunnelPolicy): Promise<GateDecision> {
    try {
      return await this.#check(req, t);
    } catch (err) {
      this.#o.onError?.(err);
      return unavailable(req, 'the agent’s log');
    }
  }

  /**
   * Whether the credential an open connection (a WebSocket) was allowed with still is: asked
   * again of the relay once the cached answer is older than DECISION_TTL_MS. False when no
   * answer can be had (fail closed).
   */
  async stillAllowed(host: string, credential: AgentCredential, clientIp: string): Promise<boolean> {
    try {
      return (await this.#decision(host, credential, clientIp, false)).kind === 'allow';
    } catch (err) {
      this.#o.onError?.(err);
      return false;
    }
  }

  async #check(req: GateRequest, t: AgentTunnelPolicy): Promise<GateDecision> {
    const record = this.#recordFor(req);
    const limited = rateLimitStep(req, t, this.#o.rateLimiter, record);
    if (limited) return limited;
    const [pathname, query = ''] = splitTarget(req.path);
    if (pathname.startsWith('/.tunn/')) return this.#ownPath(req, t, pathname, new URLSearchParams(query));
    const removeHeaders: string[] = [];
    if (t.basicAuth) {
      const refusal = basicAuthStep(req, t, record);
      if (refusal) return refusal;
      removeHeaders.push('authorization');
    }
    if (t.public) return { kind: 'allow', setHeaders: [], removeHeaders };
    const browser = isBrowser(req);
    const credential = credentialOf(req, t);
    if (!credential) return signIn(this.#relay, req, browser, []);
    const d = await this.#decision(req.host, credential, req.clientIp, acceptsHtml(req), req.requestId);
    if (d.kind === 'sign-in') return signIn(this.#relay, req, browser, credential.kind === 'session' ? [['set-cookie', clearSessionCookie(req.secure)]] : []);
    if (d.kind === 'refuse') return { kind: 'respond', status: d.status, headers: d.headers, body: d.body, refusal: d.refusal };
    if (credential.kind === 'bearer') removeHeaders.push('authorization');
    const principal: Principal | undefined = d.principal;
    return { kind: 'allow', email: d.email, principal, setHeaders: [[USER_EMAIL_HEADER, d.email], [ASSERTION_HEADER, d.assertion]], removeHeaders };
  }

  async #ownPath(req: GateRequest, t: AgentTunnelPolicy, pathname: string, q: URLSearchParams): Promise<GateDecision> {
    const source = this.#o.source;
    const host = req.host;
    const cookie = readCookie(cookieLine(req), sessionCookieName(req.secure));
    return ownPathStep(req, pathname, q, {
      loginUrl: loginUrl(this.#relay, req, '/'),
      now: this.#o.clock.now(),
      // The relay checks the code is for this host and that the host is this agent's.
      redeem: (code) => this.#timed(source.redeem({ host, code, clientIp: req.clientIp, userAgent: header(req, 'user-agent') }), host),
      onBadCode: () => this.#recordFor(req)({ kind: 'login_failed', ip: req.clientIp, tunnel: t.tunnelId, detail: 'hand-off code unknown, used, expired or for another host' }),
      sessions: {
        lookup: (value) => this.#timed(source.session({ host, cookie: value }), host),
        revokeFamily: async () => {
          if (!cookie) return;
          this.#forget(host, { kind: 'session', cookie });
          await this.#timed(source.logout({ host, cookie }), host);
        },
      },
    });
  }

  async #decision(host: string, credential: AgentCredential, clientIp: string, html: boolean, requestId?: string): Promise<AgentDecision> {
    const key = cacheKey(host, credential, html);
    const now = this.#o.clock.now();
    const hit = this.#cache.get(key);
    if (hit && now - hit.at < DECISION_TTL_MS) return hit.decision;
    const decision = await this.#timed(this.#o.source.decide({ host, credential, clientIp, html, requestId }), host);
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(key, { at: now, decision });
    return decision;
  }

  #forget(host: string, credential: AgentCredential): void {
    for (const html of [true, false]) this.#cache.delete(cacheKey(host, credential, html));
  }

  #timed<T>(p: Promise<T>, host: string): Promise<T> {
    const ms = this.#o.decisionTimeoutMs ?? DECISION_TTL_MS;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TunnError('UNAVAILABLE', `asking the relay about a visitor of ${host}: no answer within ${ms} ms`)), ms);
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }
}

/**
 * The tunn credential of a request: a Bearer token, else the host's session cookie. As at the
 * relay, with --basic-auth the Authorization header is the tunnel's password, so identity
 * comes from the cookie only.
 */
export function credentialOf(req: GateRequest, t: Pick<AgentTunnelPolicy, 'basicAuth'>): AgentCredential | undefined {
  const bearer = t.basicAuth ? undefined : bearerFrom(header(req, 'authorization'));
  if (bearer) return { kind: 'bearer', token: bearer };
  const cookie = readCookie(cookieLine(req), sessionCookieName(req.secure));
  return cookie ? { kind: 'session', cookie } : undefined;
}

/** One cache entry per (host, credential, page or JSON); the credential only as a digest. */
function cacheKey(host: string, c: AgentCredential, html: boolean): string {
  const secret = c.kind === 'session' ? c.cookie : c.token;
  return `${host.toLowerCase()}\0${c.kind}\0${html ? 1 : 0}\0${createHash('sha256').update(secret).digest('base64url')}`;
}
