import { TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import { sessionCookieName } from './cookies.ts';
import { ASSERTION_HEADER, type Gate, type GateRefusal, type GateRequest, type TunnelPolicy } from './gate.ts';
import type { Handoff } from './handoff.ts';
import type { Principal } from './revocation.ts';
import type { Session, SessionService } from './sessions.ts';

// The relay as the policy decision point for hosts whose TLS ends at an agent (issue 12).
// The agent enforces (src/agent/tls/agent-gate.ts); the relay decides, with the same Gate,
// sessions and hand-off codes it uses for the hosts it terminates itself, and sees only what a
// decision needs: the host, the visitor's tunn credential and address, and whether refusals
// should be pages. Never the request line, other headers or the body.
//
// Each method answers one agent only for the hosts that agent holds (`holds`): a decision, a
// signed assertion, a redeemed hand-off code or a sign-out for another agent's host is refused
// with FORBIDDEN, so a compromised agent cannot mint assertions or sessions for names it does
// not serve. Phase 2 carries DecisionSource over the control stream (one request/response
// message pair per method); the in-process form here is what both ends call.

/** The tunn credential a visitor presented at the agent. */
export type AgentCredential = { kind: 'session'; cookie: string } | { kind: 'bearer'; token: string };

export interface AgentDecisionQuery {
  /** The Host the visitor sent (name, and port if not 443). */
  host: string;
  credential: AgentCredential;
  clientIp: string;
  /** The visitor reads HTML (Accept mentions text/html): a refusal comes as a page. */
  html: boolean;
  requestId?: string;
}

/**
 * `allow`: forward with Tunn-User-Email = email and Tunn-Jwt-Assertion = assertion (signed by
 * the relay for this host, `aud` = https://<host>). `sign-in`: the credential is unknown,
 * expired or revoked (the agent clears its cookie and sends the visitor to sign in).
 * `refuse`: send this answer (policy 403, bad token 401, relay trouble 503).
 */
export type AgentDecision =
  | { kind: 'allow'; email: string; assertion: string; principal?: Principal }
  | { kind: 'sign-in' }
  | { kind: 'refuse'; status: number; headers: [string, string][]; body: string; refusal?: GateRefusal };

/** A redeemed hand-off code: the host session's cookie value and where to send the visitor. */
export interface Redemption {
  cookieValue: string;
  expiresAt: number;
  returnPath: string;
}

/** What an agent asks the relay about visitors of the hosts it terminates. */
export interface DecisionSource {
  decide(q: AgentDecisionQuery): Promise<AgentDecision>;
  /** Exchanges a one-time, host-bound hand-off code for a session of `host`. */
  redeem(q: { host: string; code: string | undefined; clientIp: string; userAgent?: string }): Promise<Redemption | undefined>;
  /** The session behind a host cookie (the sign-out page names its email). */
  session(q: { host: string; cookie: string | undefined }): Promise<Session | undefined>;
  /** Signs the visitor out: the host session's whole family, as /.tunn/logout does at the relay. */
  logout(q: { host: string; cookie: string }): Promise<void>;
}

export interface DecisionPointOptions {
  gate: Gate;
  handoff: Handoff;
  sessions: SessionService;
  /** The relay's policy for a tunnel host (the registration's -a, public, owner…), or undefined when no tunnel serves it. */
  policyFor(hostname: string): TunnelPolicy | undefined;
}

/** The hostname of a Host value, normalised (port and trailing dot dropped, lower case). */
export function hostnameOf(host: string): string {
  const h = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  return normalizeHost(h);
}

export class AgentDecisionPoint {
  readonly #o: DecisionPointOptions;

  constructor(opts: DecisionPointOptions) {
    this.#o = opts;
  }

  /** The DecisionSource one agent may use: `holds(hostname)` says which hosts are that agent's (its live tunnels). */
  forAgent(holds: (hostname: string) => boolean): DecisionSource {
    const held = (host: string, what: string): string => {
      const name = hostnameOf(host);
      if (!holds(name)) throw new TunnError('FORBIDDEN', `${what} for ${name}: this agent does not hold a tunnel for that host`);
      return name;
    };
    return {
      decide: async (q) => this.#decide(held(q.host, 'access decision'), q),
      redeem: async (q) => {
        held(q.host, 'hand-off code');
        const done = await this.#o.handoff.complete(q.code, q.host, { ip: q.clientIp, userAgent: q.userAgent });
        return done && { cookieValue: done.cookieValue, expiresAt: done.session.expiresAt, returnPath: done.returnPath };
      },
      session: async (q) => {
        held(q.host, 'session lookup');
        return this.#o.sessions.lookup(q.cookie, q.host);
      },
      logout: async (q) => {
        held(q.host, 'sign-out');
        const s = await this.#o.sessions.lookup(q.cookie, q.host);
        if (s) await this.#o.sessions.revokeFamily(s);
      },
    };
  }

  async #decide(hostname: string, q: AgentDecisionQuery): Promise<AgentDecision> {
    const policy = this.#o.policyFor(hostname);
    if (!policy) throw new TunnError('NOT_FOUND', `access decision for ${hostname}: no tunnel serves that host now`);
    // The agent enforces basic auth and rate limits itself (the same steps, gate-steps.ts); the
    // IP allow-list stays at the relay's edge. What is left is identity and policy.
    const t: TunnelPolicy = { ...policy, basicAuth: undefined, rateLimit: undefined, allowIps: undefined };
    const headers: [string, string][] = [['host', q.host]];
    if (q.html) headers.push(['accept', 'text/html']);
    if (q.credential.kind === 'session') headers.push(['cookie', `${sessionCookieName(true)}=${q.credential.cookie}`]);
    else headers.push(['authorization', `Bearer ${q.credential.token}`]);
    // A request for "/" stands in for the visitor's: the decision does not depend on the path,
    // and the relay never learns it.
    const req: GateRequest = { method: 'GET', path: '/', host: q.host, secure: true, clientIp: q.clientIp, headers, upgrade: false, requestId: q.requestId };
    const d = await this.#o.gate.check(req, t);
    if (d.kind === 'allow') {
      const assertion = d.setHeaders.find(([n]) => n === ASSERTION_HEADER)?.[1];
      if (!d.email || !assertion) throw new TunnError('UNAVAILABLE', `access decision for ${hostname}: the relay allowed without an identity (a public tunnel cannot end TLS at an agent with identity checks)`);
      return { kind: 'allow', email: d.email, assertion, principal: d.principal };
    }
    if (d.refusal?.reason === 'sign-in') return { kind: 'sign-in' };
    return { kind: 'refuse', status: d.status, headers: d.headers, body: typeof d.body === 'string' ? d.body : d.body.toString('utf8'), refusal: d.refusal };
  }
}
