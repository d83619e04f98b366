import type { TLSSocket } from 'node:tls';
import type { TokenService } from '../auth/tokens.ts';
import type { Clock } from '../lib/clock.ts';
import { TunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { checkKindOptions, checkTunnelOptions, type RegisteredTunnel, type TunnelOptions } from '../protocol/messages.ts';
import { claimName, nameIsHeld, type Account } from '../store/accounts.ts';
import type { Store } from '../store/store.ts';
import { AgentSession, type AgentTlsHooks } from './agent-session.ts';
import type { RelayMetrics } from './metrics.ts';
import { randomName, validateName } from './names.ts';
import { parseAllowUpgrade } from './upgrades.ts';
import { parseIpAllowList } from '../auth/ip-allow.ts';
import { parseRateLimit } from '../auth/rate-limit.ts';
import type { TunnelDirectory } from './tunnel-directory.ts';

// The agent side of the relay: agent sessions (one per `tunn/1` connection) and what they
// register. Registration resolves the domain, claims the name for the account (names
// belong to the account that first used them), checks the options, and attaches the tunnel
// to the directory, where a second agent of the same account takes the name over.

/** What registration needs of identity (created once the relay knows its URL). */
export interface RegistrationChecks {
  /** Allow-list entries name existing groups of the account; throws UNKNOWN_GROUP / INVALID_INPUT. */
  validateAllow(accountId: string, allow: string[]): Promise<unknown>;
  /** `--for`: the -a entries become grants that end `seconds` after the first registration. */
  registerGrants(accountId: string, host: string, ref: string, allow: string[], seconds: number): Promise<unknown>;
  /** A hello with a token the relay refused (for the security events). */
  tokenRefused(info: { err: unknown; token: string; ip: string }): void;
}

export interface TunnelsDeps {
  directory: TunnelDirectory;
  store: Store;
  tokens: TokenService;
  clock: Clock;
  logger: Logger;
  metrics: RelayMetrics;
  /** The relay's zone. */
  domain: string;
  urlsFor(host: string): string[];
  /** Picks the domain a tunnel is served under; default: the relay's domain only. */
  resolveDomain?: (account: Account, requested: string | undefined, kind?: { kind?: string; backend?: string; tlsEnds?: 'relay' | 'agent' }) => Promise<string>;
  /** Public TCP/UDP ports (kind-ports.ts); absent: none. */
  ports?: {
    register(t: { host: string; name: string; domain: string; accountId: string; kind: string; public: boolean }): Promise<number | undefined>;
    gone(host: string): void;
  };
  /** TLS that ends at agents (agent-tls-relay.ts). */
  agentTls?: AgentTlsHooks;
  /** The relay's idle limits for tcp connections and udp flows (ms), told to agents per stream. */
  streamIdleMs?: { tcp: number; udp: number };
}

export class Tunnels {
  readonly directory: TunnelDirectory;
  readonly #d: TunnelsDeps;
  readonly #sessions = new Set<AgentSession>();
  #checks: RegistrationChecks | undefined;

  constructor(d: TunnelsDeps) {
    this.#d = d;
    this.directory = d.directory;
  }

  /** Identity's checks: until they are set, registrations are refused as "starting" (the agent retries). */
  setChecks(c: RegistrationChecks): void {
    this.#checks = c;
  }

  /** Live agent sessions (revocation re-checks their tokens). */
  get sessions(): ReadonlySet<AgentSession> {
    return this.#sessions;
  }

  /** The `tunn/1` route: a TLS connection from an agent. */
  acceptAgent(socket: TLSSocket): void {
    const d = this.#d;
    const session = new AgentSession(socket, {
      store: d.store,
      tokens: d.tokens,
      logger: d.logger,
      relayDomain: d.domain,
      register: (s, account, opts) => this.#register(s, account, opts),
      unregister: (s, id) => {
        const t = this.directory.detachTunnel(s, id);
        if (t) this.gone(t.host);
      },
      onClose: (s) => {
        this.#sessions.delete(s);
        d.metrics.agents.set(this.#sessions.size);
        for (const t of this.directory.detach(s)) this.gone(t.host);
      },
      onTokenRefused: (info) => this.#checks?.tokenRefused(info),
      agentTls: d.agentTls,
      streamIdleMs: d.streamIdleMs,
    });
    this.#sessions.add(session);
    d.metrics.agents.set(this.#sessions.size);
  }

  /** A tunnel went offline here (its last session left, it was stopped or revoked). */
  gone(host: string): void {
    const d = this.#d;
    d.metrics.tunnels.set(this.directory.size);
    if (!this.directory.get(host)) d.metrics.forget(host);
    d.ports?.gone(host);
    d.logger.info({ host }, 'tunnel offline');
  }

  /** Whether `host` is <name>.<domain> for a name some account holds (its agent may be away). */
  async isHeldName(host: string): Promise<boolean> {
    const dot = host.indexOf('.');
    if (dot <= 0) return false;
    return nameIsHeld(this.#d.store, host.slice(dot + 1), host.slice(0, dot));
  }

  closeAll(): void {
    for (const s of this.#sessions) s.close();
  }

  async #register(session: AgentSession, account: Account, opts: TunnelOptions): Promise<RegisteredTunnel> {
    const d = this.#d;
    const checks = this.#checks;
    if (!checks) throw new TunnError('UNAVAILABLE', 'the relay is starting');
    const domain = d.resolveDomain ? await d.resolveDomain(account, opts.domain, { kind: opts.kind, backend: opts.backend, tlsEnds: opts.tlsEnds }) : this.#defaultDomain(opts.domain);
    let name: string;
    if (opts.name) {
      name = validateName(opts.name);
      await claimName(d.store, domain, name, account.id, d.clock.now());
    } else {
      name = await this.#claimRandomName(domain, account);
    }
    await this.#validate(account, opts, checks);
    const host = `${name}.${domain}`;
    // Counted from the first registration of this agent run: re-sending register does not extend it.
    if (opts.grantFor) await checks.registerGrants(account.id, host, opts.grantFor.ref, opts.allow, opts.grantFor.seconds);
    const kind = opts.kind ?? 'http';
    const port = d.ports ? await d.ports.register({ host, name, domain, accountId: account.id, kind, public: opts.public }) : undefined;
    if (opts.public && (kind === 'tcp' || kind === 'udp') && port === undefined) throw new TunnError('FORBIDDEN', `this relay has no public ${kind.toUpperCase()} ports: its operator turns them on with \`tunn relay --${kind}-ports LOW-HIGH\` (or reach the tunnel privately through \`tunn connect\`, without --public)`);
    const existing = this.directory.get(host);
    this.directory.attach(
      { id: opts.id, host, name, domain, accountId: account.id, email: account.email, agentId: session.agentId, options: opts, metrics: d.metrics.forTunnel(host) },
      session,
      d.clock.now(),
    );
    // In a cluster, the agent hears "registered" once the other relays can route to it.
    if (this.directory.written) {
      await this.directory.written(session);
      if (!this.directory.get(host)?.sessions.includes(session)) throw new TunnError('NAME_TAKEN', `${host} is served by another account's agent on another relay`);
    }
    d.metrics.tunnels.set(this.directory.size);
    if (!existing || existing.agentId !== session.agentId) d.logger.info({ host, email: account.email }, 'tunnel online');
    const urls = kind === 'tcp' || kind === 'udp' ? [port === undefined ? `${kind}://${host}` : `${kind}://${d.domain}:${port}`] : d.urlsFor(host);
    return { id: opts.id, name, host, url: urls[0]!, urls, ...(port !== undefined ? { port } : {}) };
  }

  /** What the options mean (their shape was checked when the message was read: tunnelOptionsSchema). */
  async #validate(account: Account, opts: TunnelOptions, checks: RegistrationChecks): Promise<void> {
    checkTunnelOptions(opts);
    checkKindOptions(opts);
    await checks.validateAllow(account.id, opts.allow);
    if (opts.allowIps?.length) parseIpAllowList(opts.allowIps);
    if (opts.rateLimit?.perIp !== undefined) parseRateLimit(opts.rateLimit.perIp, '--rate-limit');
    if (opts.rateLimit?.perTunnel !== undefined) parseRateLimit(opts.rateLimit.perTunnel, '--rate-limit-tunnel');
    if (opts.allowUpgrade !== undefined) opts.allowUpgrade = parseAllowUpgrade(opts.allowUpgrade);
  }

  #defaultDomain(requested: string | undefined): string {
    const domain = this.#d.domain;
    if (requested && requested.toLowerCase() !== domain) {
      throw new TunnError('NOT_FOUND', `the domain ${requested} is not served by this relay; leave out -d to use ${domain}`);
    }
    return domain;
  }

  async #claimRandomName(domain: string, account: Account): Promise<string> {
    for (let i = 0; i < 10; i++) {
      const n = randomName();
      try {
        await claimName(this.#d.store, domain, n, account.id, this.#d.clock.now());
        return n;
      } catch (err) {
        if (!(err instanceof TunnError && err.code === 'NAME_TAKEN')) throw err;
      }
    }
    throw new TunnError('UNAVAILABLE', 'could not find a free random name; pass one with -n');
  }
}
