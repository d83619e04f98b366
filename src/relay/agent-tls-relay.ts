import type { Socket } from 'node:net';
import type { AgentCertReport } from '../api/certificates.ts';
import type { RecordEvent } from '../auth/events.ts';
import { AgentDecisionPoint, hostnameOf, type DecisionSource } from '../auth/agent-decisions.ts';
import { AGENT_REPORTED_DETAIL } from '../auth/event-kinds.ts';
import type { TunnelPolicy } from '../auth/gate.ts';
import type { Identity } from '../auth/identity.ts';
import { parseIpAllowList } from '../auth/ip-allow.ts';
import { agentDns01, Dns01Budget } from '../dns/agent-dns01.ts';
import type { Dns01Provider } from '../dns/dns01-provider.ts';
import type { Clock } from '../lib/clock.ts';
import { errorMessage, TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import type { Logger } from '../lib/logger.ts';
import type { SplicedStream } from '../lib/splice.ts';
import { WindowCounts } from '../lib/window-counts.ts';
import { splicedH2Stream } from '../protocol/h2-stream.ts';
import { AGENT_EVENT_WINDOW_MS, AGENT_EVENTS_PER_WINDOW, wireCodeOf, type AcmeAdvert, type AgentEventKind, type AgentTlsRequest, type MessageOf, type StreamKind, type TlsStateReport } from '../protocol/messages.ts';
import { carryConnection, carryStream } from './carry-connection.ts';
import type { ClientAddress, PortTunnel } from './public-port-tunnel.ts';
import type { SessionRef, Tunnel, TunnelDirectory } from './tunnel-directory.ts';

// The relay's half of TLS that ends at an agent (issue 12; docs/agent-tls-phase2.md):
//  - answers an agent's `tls-request`s (access decisions, hand-off codes, sessions, sign-out,
//    DNS-01 records) only for hosts that agent's live tunnels with TLS at the agent hold;
//  - keeps each name's last `tls-state`, which decides the edge's route: the raw TLS goes to
//    the agent once it reports `agent` (or always, with --no-fallback), else the relay keeps
//    terminating (fallback);
//  - carries those connections (and TLS-ALPN-01 validations for them) to the agent as streams
//    of kind `tls` / `acme-tls-alpn`, bytes only: the relay never decrypts them;
//  - records the refusals an agent's gate reports (`agent-event`) among its security events,
//    only for hosts that agent holds, at most AGENT_EVENTS_PER_WINDOW per session and window, and
//    as many per account (all its sessions together); marked as the agent's word (AGENT_REPORTED_DETAIL).

/** Default DNS-01 challenges per account per rolling week (issue 12, "Rate limits"). */
export const DEFAULT_DNS01_PER_WEEK = 20;

/** Agent-reported security events a session may send per window (protocol/messages.ts); more are dropped (a flood costs the relay nothing). */
export { AGENT_EVENT_WINDOW_MS, AGENT_EVENTS_PER_WINDOW };

/** The wording of an agent-reported event (the relay writes it: the agent sends no text). */
const AGENT_EVENT_TEXT: Record<AgentEventKind, string> = {
  rate_limited: 'over the tunnel’s --rate-limit',
  basic_auth_failed: 'wrong or missing --basic-auth password',
  login_failed: 'hand-off code unknown, used, expired or for another host',
  host_mismatch: 'a request’s Host named another server than its TLS handshake (421)',
  client_cert_refused: 'client certificate missing or refused (--client-ca)',
};

export interface AgentTlsRelayOptions {
  directory: TunnelDirectory;
  /** undefined while the relay is starting (requests are then answered UNAVAILABLE). */
  identity(): Identity | undefined;
  policyOf(t: Tunnel): TunnelPolicy;
  clock: Clock;
  logger: Logger;
  /** The relay's own zone's DNS-01 provider (its authoritative DNS); absent: agents cannot use DNS-01 here. */
  dns01?: Dns01Provider;
  dns01PerWeek?: number;
  /** The ACME CA the relay advertises to agents in `welcome`. */
  acme?: AcmeAdvert;
  /** The idle limit of a connection to an HTTP tunnel (--idle-timeout). */
  idleTimeoutMs: number;
  /** The idle limit of a connection to a `tunn tls --backend tcp` tunnel (--tcp-idle; default idleTimeoutMs), also sent to its agent on each `tls` stream (DATA_HEADERS.idleMs). */
  tcpIdleMs?: number;
  /** Told when whether TLS ends at the agent for a host changes (a cluster's lease records it). */
  onEndsChanged?(host: string): void;
  /** Where agent-reported security events go (the relay's own event log: `tunn events`, the console). */
  recordEvent?(e: RecordEvent): Promise<void> | void;
}

/** A name's reported state, with the agent that reported it (a stale report of a replaced agent does not count). */
interface Reported extends TlsStateReport {
  agentId: string;
}

/** Key prefix of an account's event window (beside its sessions' windows, keyed by session id). */
const ACCOUNT_WINDOW = 'acct:';

export class AgentTlsRelay {
  readonly #o: AgentTlsRelayOptions;
  readonly #states = new Map<string, Reported>();
  readonly #budget: Dns01Budget;
  /** Per session, and per account (`acct:` keys; all its agents together): agent events in the current window. */
  readonly #eventWindows = new WindowCounts({ limit: AGENT_EVENTS_PER_WINDOW, windowMs: AGENT_EVENT_WINDOW_MS });
  #point: AgentDecisionPoint | undefined;

  constructor(o: AgentTlsRelayOptions) {
    this.#o = o;
    this.#budget = new Dns01Budget({ perWeek: o.dns01PerWeek ?? DEFAULT_DNS01_PER_WEEK, clock: o.clock });
  }

  get acme(): AcmeAdvert | undefined {
    return this.#o.acme;
  }

  /** DNS-01 challenges `accountId` has left this week. */
  dns01Remaining(accountId: string): number {
    return this.#budget.remaining(accountId);
  }

  /** The live tunnel at `name` whose TLS ends at an agent, if any. */
  agentTunnel(name: string): Tunnel | undefined {
    const t = this.#o.directory.get(normalizeHost(name));
    return t?.options.tlsEnds === 'agent' ? t : undefined;
  }

  /** The last state the tunnel's current agent reported for `name`. */
  stateOf(name: string): TlsStateReport | undefined {
    const t = this.agentTunnel(name);
    const s = t && this.#states.get(t.host);
    if (!s || s.agentId !== t.agentId) return undefined;
    const { agentId: _a, ...state } = s;
    return state;
  }

  /** Every name whose TLS ends at an agent, with its last report (`tunn cert list`, /v1/certificates). */
  reports(): AgentCertReport[] {
    return this.#o.directory
      .all()
      .filter((t) => t.options.tlsEnds === 'agent')
      .map((t) => {
        const s: TlsStateReport = this.stateOf(t.host) ?? { name: t.host, terminatedAt: 'relay', reason: 'agent certificate pending' };
        return { name: t.host, accountId: t.accountId, owner: t.email, terminatedAt: s.terminatedAt, reason: s.reason, notAfter: s.notAfter, pin: s.pin, dns01Remaining: this.#budget.remaining(t.accountId) };
      });
  }

  /**
   * The edge's question: does the raw TLS of `name` go to its agent now?
   * Security: a private `tunn tls --backend tcp` tunnel (no --public) is never routed by SNI: its
   * agent has no gate to run on plain bytes, so only `tunn connect` (which authenticates the user
   * and checks the allow-list here) reaches it, as for relay termination.
   */
  tlsEndsAtAgent(name: string): boolean {
    const t = this.agentTunnel(name);
    if (!t || (t.options.kind === 'tls' && !t.options.public)) return false;
    return t.options.tlsFallback === false || this.stateOf(t.host)?.terminatedAt === 'agent';
  }

  /** A TLS-ALPN-01 validation for `name` goes to the agent that gets its certificate. */
  agentAnswersAlpnChallenge(name: string): boolean {
    return this.agentTunnel(name) !== undefined;
  }

  /** Whether `session`'s agent holds `hostname` with TLS at the agent (the scope of every answer to it). */
  #holds(session: SessionRef, hostname: string): boolean {
    const t = this.agentTunnel(hostname);
    return !!t && t.sessions.includes(session);
  }

  /** `tls-state` from an agent: kept for a tunnel of that session only, for the name it holds. */
  onState(session: SessionRef, m: MessageOf<'tls-state'>): void {
    const name = normalizeHost(m.state.name);
    const t = this.agentTunnel(name);
    if (!t || t.id !== m.id || !t.sessions.includes(session)) {
      this.#o.logger.warn({ name: name.slice(0, 253), agent: session.agentId.slice(0, 8) }, 'ignored a tls-state for a name this agent does not hold with TLS at the agent');
      return;
    }
    const old = this.#states.get(name);
    const before = this.tlsEndsAtAgent(name);
    this.#states.set(name, { ...m.state, name, agentId: session.agentId });
    if (this.tlsEndsAtAgent(name) !== before) this.#o.onEndsChanged?.(t.host);
    if (old?.terminatedAt !== m.state.terminatedAt || old.agentId !== session.agentId) {
      this.#o.logger.info({ host: name, terminatedAt: m.state.terminatedAt, reason: m.state.reason }, m.state.terminatedAt === 'agent' ? 'TLS now ends at the agent' : 'the relay terminates TLS for an agent-terminated tunnel (fallback)');
    }
  }

  /**
   * `agent-event` from an agent: a refusal its gate made for a host whose TLS ends there.
   * Security: recorded only for the host of that session's own tunnel `m.id` (another agent
   * cannot fill someone else's event list), rate-limited per session, worded by the relay
   * (the agent sends no text), and owned by the tunnel's account.
   */
  onEvent(session: SessionRef, m: MessageOf<'agent-event'>): void {
    const host = normalizeHost(hostnameOf(m.event.host));
    const t = this.agentTunnel(host);
    if (!t || t.id !== m.id || !t.sessions.includes(session)) {
      this.#o.logger.warn({ host: host.slice(0, 253), agent: session.agentId.slice(0, 8) }, 'ignored a security event an agent reported for a host it does not hold with TLS at the agent');
      return;
    }
    // One budget per session, and one per account shared by all its sessions (many sessions cannot multiply it).
    const taken = this.#eventWindows.take([session.id, `${ACCOUNT_WINDOW}${t.accountId}`], this.#o.clock.now());
    if (!taken.ok) {
      if (taken.first) this.#o.logger.warn({ host: t.host, agent: session.agentId.slice(0, 8), perWindow: AGENT_EVENTS_PER_WINDOW, windowMs: AGENT_EVENT_WINDOW_MS, per: taken.key === session.id ? 'session' : 'account' }, 'an agent reports more security events than the relay records; dropping the rest of this window');
      return;
    }
    // The address and email are the agent's word (the relay saw nothing of the connection): the detail says so.
    void Promise.resolve(
      this.#o.recordEvent?.({ kind: m.event.kind, ip: m.event.ip, email: m.event.email?.toLowerCase(), tunnel: t.host, accountId: t.accountId, detail: `${AGENT_REPORTED_DETAIL}${AGENT_EVENT_TEXT[m.event.kind]}` }),
    ).catch((err: unknown) => this.#o.logger.warn({ err: errorMessage(err) }, 'recording an agent-reported security event failed'));
  }

  /** The session ended: its event window goes with it (else one entry per session ever seen stays). */
  onClosed(session: SessionRef): void {
    this.#eventWindows.forget(session.id);
  }

  /** Sessions with an event window (for tests: closed sessions leave none behind; accounts' windows are not counted). */
  get eventWindowCount(): number {
    let n = 0;
    for (const k of this.#eventWindows.keys()) if (!k.startsWith(ACCOUNT_WINDOW)) n++;
    return n;
  }

  /** Answers one `tls-request` of `session`'s agent; the reply goes back on that session. */
  async onRequest(session: SessionRef, accountId: string, m: MessageOf<'tls-request'>): Promise<void> {
    try {
      const result = await this.#answer(session, accountId, m.request);
      session.send({ type: 'tls-reply', rid: m.rid, result: result ?? null });
    } catch (err) {
      if (!(err instanceof TunnError)) this.#o.logger.error({ err: errorMessage(err), op: m.request.op }, 'answering an agent’s TLS request failed');
      const message = err instanceof TunnError ? err.message : `${m.request.op}: the relay failed; see its log`;
      session.send({ type: 'tls-reply', rid: m.rid, error: { code: wireCodeOf(err), message } });
    }
  }

  async #answer(session: SessionRef, accountId: string, r: AgentTlsRequest): Promise<unknown> {
    const holds = (h: string): boolean => this.#holds(session, h);
    switch (r.op) {
      case 'dns01-present':
      case 'dns01-cleanup': {
        const provider = this.#o.dns01;
        if (!provider) throw new TunnError('UNAVAILABLE', 'this relay does not publish DNS-01 records for agents (it runs no DNS for its zone): use a custom domain (TLS-ALPN-01) or --tls-cert');
        const dns = agentDns01(provider, holds, { budget: this.#budget, accountId });
        if (r.op === 'dns01-present') await dns.present(r.recordName, r.value);
        else await dns.cleanup(r.recordName, r.value);
        return null;
      }
      default: {
        // Scope first: an agent learns nothing (not even "starting") about a host it does not hold.
        if (!holds(hostnameOf(r.host))) throw new TunnError('FORBIDDEN', `${r.op} for ${hostnameOf(r.host).slice(0, 253)}: this agent does not hold a tunnel for that host with TLS at the agent`);
        const source = this.#source(holds);
        if (r.op === 'decide') return source.decide(r);
        if (r.op === 'redeem') return (await source.redeem({ ...r, code: r.code })) ?? null;
        if (r.op === 'session') return (await source.session({ host: r.host, cookie: r.cookie })) ?? null;
        await source.logout(r);
        return null;
      }
    }
  }

  #source(holds: (hostname: string) => boolean): DecisionSource {
    const id = this.#o.identity();
    if (!id) throw new TunnError('UNAVAILABLE', 'the relay is starting');
    this.#point ??= new AgentDecisionPoint({
      gate: id.gate,
      handoff: id.handoff,
      sessions: id.sessions,
      policyFor: (h) => {
        const t = this.agentTunnel(h);
        return t && this.#o.policyOf(t);
      },
    });
    return this.#point.forAgent(holds);
  }

  /** Edge route `tls-to-agent` for an agent-terminated host: --allow-ip here, then the raw bytes to the agent. */
  carryTls(socket: Socket, serverName: string, clientIp: string): void {
    const t = this.agentTunnel(serverName);
    if (!t) return void socket.destroy();
    if (t.options.allowIps?.length && !parseIpAllowList(t.options.allowIps).allows(clientIp)) {
      // The IP allow-list stays at the relay (issue 12): a refused client gets no handshake at all.
      socket.destroy();
      return;
    }
    void carryConnection(socket, this.#portTunnel(t, 'tls'), { idleTimeoutMs: this.#idleOf(t) });
  }

  /**
   * A visitor's raw TLS for a tunnel of this relay whose TLS ends at its agent, accepted by
   * another relay of the cluster (never decrypted there) and carried here as a link stream.
   * Security: `--allow-ip` is checked on the visitor's address the link carries, as carryTls does
   * on a local socket. Throws NOT_FOUND when TLS does not end at an agent for `name` here.
   */
  carryCarriedTls(link: SplicedStream, name: string, client: ClientAddress): void {
    const t = this.agentTunnel(name);
    if (!t || !this.tlsEndsAtAgent(name)) throw new TunnError('NOT_FOUND', `no tunnel with TLS at its agent at ${name.slice(0, 253)} on this relay`);
    if (t.options.allowIps?.length && !parseIpAllowList(t.options.allowIps).allows(client.address)) {
      t.metrics.drop('allow-ip');
      throw new TunnError('FORBIDDEN', `${client.address} is not on the --allow-ip list of ${t.host}`);
    }
    void carryStream(link, this.#portTunnel(t, 'tls'), client, { idleTimeoutMs: this.#idleOf(t) });
  }

  /** Edge route `acme-tls-alpn-to-agent`: the CA's validation connection, to the agent that answers it. */
  carryAlpnChallenge(socket: Socket, serverName: string): void {
    const t = this.agentTunnel(serverName);
    if (!t) return void socket.destroy();
    void carryConnection(socket, this.#portTunnel(t, 'acme-tls-alpn'), { idleTimeoutMs: 30_000 });
  }

  /**
   * A TLS-ALPN-01 validation for an agent of this relay that another relay of the cluster
   * accepted, as a link stream (the CA may reach any relay). Throws NOT_FOUND when no tunnel
   * with TLS at its agent is at `name` here.
   */
  carryCarriedAlpnChallenge(link: SplicedStream, name: string, client: ClientAddress): void {
    const t = this.agentTunnel(name);
    if (!t) throw new TunnError('NOT_FOUND', `no tunnel with TLS at its agent at ${name.slice(0, 253)} on this relay`);
    void carryStream(link, this.#portTunnel(t, 'acme-tls-alpn'), client, { idleTimeoutMs: 30_000 });
  }

  /** A tls --backend tcp tunnel's connections are TCP connections: --tcp-idle; an HTTP tunnel's, --idle-timeout. */
  #idleOf(t: Tunnel): number {
    return t.options.kind === 'tls' ? (this.#o.tcpIdleMs ?? this.#o.idleTimeoutMs) : this.#o.idleTimeoutMs;
  }

  /** The tunnel as carryConnection sees it: one stream of `kind` on a live session, resolved once the agent accepts it. */
  #portTunnel(t: Tunnel, kind: StreamKind): PortTunnel {
    const directory = this.#o.directory;
    return {
      host: t.host,
      metrics: t.metrics,
      admits: () => true,
      open: (client) =>
        new Promise((resolve, reject) => {
          const session = directory.pickSession(t);
          if (!session) return reject(new TunnError('UNAVAILABLE', `no live agent session for ${t.host}`));
          // The client's port too: a --proxy-protocol target behind agent-terminated TLS gets it in PROXY v2.
          // A tls --backend tcp tunnel's agent carries the connection to its target with the relay's --tcp-idle, as for a tcp stream.
          const idle = kind === 'tls' && t.options.kind === 'tls' ? { idleMs: this.#idleOf(t) } : {};
          const stream = session.openStream(t, { kind, client: client.address, clientPort: client.port, ...idle });
          stream.once('response', (h) => (Number(h[':status']) === 200 ? resolve(splicedH2Stream(stream)) : (stream.close(), reject(new TunnError('UNAVAILABLE', `the agent refused a ${kind} stream for ${t.host} (${h[':status']})`)))));
          stream.once('error', reject);
          stream.once('close', () => reject(new TunnError('UNAVAILABLE', `the ${kind} stream for ${t.host} closed before the agent answered`)));
        }),
    };
  }
}
