import type { SecureContext, TLSSocket } from 'node:tls';
import type { Server as NetServer } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { MessageHead } from '../lib/http1.ts';
import { createApiApp } from '../api/app.ts';
import { lostDomainReason } from '../domains/resolution.ts';
import { isTunnToken, refusedTokenOwner } from '../auth/bearer.ts';
import type { RecordEvent } from '../auth/events.ts';
import { createIdentity, type Identity } from '../auth/identity.ts';
import { TokenService } from '../auth/tokens.ts';
import type { Clock } from '../lib/clock.ts';
import { errorMessage, isTunnError, TunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { loadSecretKey, SecretBox } from '../lib/secret-box.ts';
import type { Refusal } from '../protocol/messages.ts';
import { openStore, type Store } from '../store/store.ts';
import { hostnameOf } from '../auth/agent-decisions.ts';
import { createTunnelAccess } from './access.ts';
import { createConnectRoute, linkUserOf, principalOfLinkUser, type ConnectRoute } from './connect-route.ts';
import type { ConnectPrincipal } from './connect-server.ts';
import type { ConnectKind } from '../protocol/connect.ts';
import { createTlsPassthrough, type TlsPassthrough } from './tls-passthrough.ts';
import { DEFAULT_TCP_IDLE_MS, DEFAULT_UDP_FLOW_IDLE_MS, KindPorts } from './kind-ports.ts';
import { AgentTlsRelay } from './agent-tls-relay.ts';
import { Edge } from './edge.ts';
import { Gateway } from './gateway.ts';
import { LiveRevocation } from './live-revocation.ts';
import { RelayMetrics } from './metrics.ts';
import { cleanIp, createOwnHostApp, createOwnHostServer } from './own-host.ts';
import { startOwnCertificate } from './own-certificate.ts';
import { pages } from './pages.ts';
import { RefusalReports } from './refusal-reports.ts';
import { TunnelRegistry } from './registry.ts';
import type { Tunnel, TunnelDirectory } from './tunnel-directory.ts';
import { checkSealingKey } from '../cluster/sealing.ts';
import { clusterStatus } from '../cluster/status.ts';
import { isTerminatedKind } from '../cluster/lease-kinds.ts';
import { joinCluster, type RelayCluster } from './cluster-wiring.ts';
import { IdentityChanges } from './identity-changes.ts';
import { createTlsServers } from './tls-servers.ts';
import { createTunnelControl } from './tunnel-control.ts';
import { Tunnels } from './tunnels.ts';
import { listenOn } from './listen.ts';
import type { RelayConfig, RelayDeps, RelayExtensions, RelayInfo, RelayParts } from './relay-config.ts';

// relay.ts only wires: the store and keys, the edge (edge.ts) on the HTTPS and HTTP ports,
// the TLS it terminates (tls-servers.ts), agent sessions and registration (tunnels.ts), the
// HTTP gateway (gateway.ts), the relay's own host (own-host.ts), identity and revocation.

export type { CertSource } from './tls-servers.ts';
export type { RelayConfig, RelayDeps, RelayExtensions, RelayInfo, RelayParts } from './relay-config.ts';
export { cleanIp } from './own-host.ts';

export class Relay {
  readonly config: RelayConfig;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #metrics = new RelayMetrics();
  readonly #registry = new TunnelRegistry();
  /** The registry, or around it the cluster's leased directory (cluster-wiring.ts). */
  #directory: TunnelDirectory = this.#registry;
  readonly #closers: (() => Promise<void> | void)[] = [];
  #parts: RelayParts | undefined;
  #identity: Identity | undefined;
  #tunnels: Tunnels | undefined;
  #gateways: Gateway[] = [];
  #listeners: NetServer[] = [];
  #info: RelayInfo | undefined;
  #heldElsewhere: ((host: string, client: string) => Promise<Duplex | undefined>) | undefined;
  /** A cluster: whether another relay serves a host now. */
  #servesElsewhere: (host: string) => boolean = () => false;
  /** Applies identity changes other relays (or the CLI) made, heard through NOTIFY (a cluster on PostgreSQL only). */
  #identityChanges: IdentityChanges | undefined;
  #agentTls: AgentTlsRelay | undefined;
  #cluster: RelayCluster | undefined;

  constructor(config: RelayConfig, deps: RelayDeps) {
    this.config = config;
    this.#logger = deps.logger;
    this.#clock = deps.clock;
  }

  get info(): RelayInfo {
    if (!this.#info) throw new TypeError('relay not started');
    return this.#info;
  }

  /** Opens the store and keys (start() does it if not done). */
  async init(): Promise<RelayParts> {
    if (this.#parts) return this.#parts;
    const c = this.config;
    const box = new SecretBox(loadSecretKey(c.secretKey, join(c.dataDir, 'secret.key')));
    const store = await openStore(c.storeUrl ?? join(c.dataDir, 'tunn.db'), { logger: this.#logger });
    // A relay whose key cannot open what the database holds refuses to start, saying so.
    await checkSealingKey(store, box, this.#clock).catch(async (err: unknown) => {
      await store.close();
      throw err;
    });
    const tokens = new TokenService({ store, box, clock: this.#clock, issuer: 'tunn' });
    await tokens.init();
    return (this.#parts = { store, box, tokens });
  }

  async start(ext: RelayExtensions): Promise<RelayInfo> {
    const { store, box, tokens } = await this.init();
    const c = this.config;
    const log = this.#logger;
    let gateway: Gateway | undefined;
    let passthrough: TlsPassthrough | undefined;
    let connectRoute: ConnectRoute | undefined;
    let ports: KindPorts | undefined;
    if (c.cluster) {
      const cluster = await joinCluster({
        config: c.cluster, store, storeUrl: c.storeUrl, box, clock: this.#clock, logger: log, listen: c.listen, registry: this.#registry,
        serveHttp: (conn, ip) => (gateway ? gateway.accept(conn, true, ip) : conn.destroy()),
        // Security: a tunnel whose TLS ends at its agent is never served from TLS another relay ended.
        tlsOnlyAtAgent: (h) => (this.#agentTls?.tlsEndsAtAgent(h) ? `TLS for ${h} ends at its agent: its raw TLS is carried between relays, never TLS another relay ended` : undefined),
        serveAgentTls: (h, link, client) => {
          if (!this.#agentTls) throw new TunnError('UNAVAILABLE', 'the relay is still starting');
          this.#agentTls.carryCarriedTls(link, h, client);
        },
        serveConnect: async (h, kind, link, u, client) => {
          if (!connectRoute) throw new TunnError('UNAVAILABLE', 'the relay is still starting');
          return connectRoute.serveCarried(link, principalOfLinkUser(u), h, kind, u.method === 'check' ? 'check' : 'carry', client);
        },
        serveRawTls: (h, link, client) => {
          if (!passthrough) throw new TunnError('UNAVAILABLE', 'the relay is still starting');
          passthrough.carryCarried(link, h, client);
        },
        serveTlsTcp: (h, link, client) => {
          if (!passthrough) throw new TunnError('UNAVAILABLE', 'the relay is still starting');
          passthrough.carryCarriedTerminated(link, h, client);
        },
        portOf: (h) => ports?.portOf(h) ?? null,
        servePort: (h, protocol, link, client) => {
          if (!ports) throw new TunnError('UNAVAILABLE', 'the relay is still starting');
          ports.carryCarried(h, protocol, link, client);
        },
        onPorts: (list) => ports?.sync(list),
        onIdentityChange: (table) => this.#identityChanges?.changed(table),
        serveAlpnChallenge: (h, link, client) => {
          if (!this.#agentTls) throw new TunnError('UNAVAILABLE', 'the relay is still starting');
          this.#agentTls.carryCarriedAlpnChallenge(link, h, client);
        },
      });
      this.#cluster = cluster;
      this.#directory = cluster.directory;
      this.#heldElsewhere = (h, client) => cluster.heldElsewhere(h, client);
      this.#servesElsewhere = (h) => cluster.servesElsewhere(h);
      cluster.registerMetrics(this.#metrics.registry);
      this.#closers.push(() => cluster.close());
    }
    // The relay's own certificate is fetched once the listeners are up (its HTTP-01 or
    // TLS-ALPN-01 challenge is answered on them); until it comes, handshakes for it fail.
    let ownCtx: SecureContext | undefined;
    let api: ReturnType<typeof createApiApp> | undefined;
    const ownHost = createOwnHostServer(createOwnHostApp({ domain: c.domain, url: () => this.info.url, metrics: this.#metrics, metricsToken: c.metricsToken, api: () => api?.fetch, mounts: ext.mounts }));
    this.#closers.push(() => void ownHost.closeAllConnections());
    // Public TCP/UDP ports; the relay's own ports are added to `reserved` once it listens.
    const reserved = [...(c.kinds?.reserved ?? [])];
    ports = new KindPorts({ store, clock: this.#clock, directory: this.#directory, config: c.kinds ?? {}, listen: c.listen, reserved, logger: log, elsewhere: this.#cluster?.portsElsewhere, metricsFor: (h) => this.#metrics.forTunnel(h) });
    this.#closers.push(() => ports.close());
    const access = createTunnelAccess(() => this.#identity);
    const agentTls = (this.#agentTls = new AgentTlsRelay({ ...ext.agentTls, directory: this.#directory, identity: () => this.#identity, policyOf: access.policyOf, clock: this.#clock, logger: log, idleTimeoutMs: c.idleTimeoutMs, tcpIdleMs: c.kinds?.tcpIdleMs ?? DEFAULT_TCP_IDLE_MS, onEndsChanged: (h) => this.#cluster?.tlsEndsChanged(h), recordEvent: (e) => this.recordEvent(e) }));
    const tunnels = (this.#tunnels = new Tunnels({ ports, directory: this.#directory, store, tokens, clock: this.#clock, logger: log, metrics: this.#metrics, domain: c.domain, urlsFor: (h) => this.urlsFor(h), resolveDomain: ext.resolveDomain, agentTls, streamIdleMs: { tcp: c.kinds?.tcpIdleMs ?? DEFAULT_TCP_IDLE_MS, udp: c.kinds?.udpFlowIdleMs ?? DEFAULT_UDP_FLOW_IDLE_MS } }));
    // Requests refused at the edge, reported to the tunnel's agent at most once a second.
    const refusals = new RefusalReports({ send: (t, m) => t.sessions.find((s) => s.alive)?.send(m) });
    this.#closers.push(() => refusals.stop());
    const gatewayOpts = {
      directory: this.#directory,
      logger: log,
      access: access.check,
      isRelayHost: (h: string) => h === c.domain,
      serveRelayHost: (conn: Duplex) => ownHost.emit('connection', conn),
      isKnownHost: (h: string) => tunnels.isHeldName(h),
      isTunnCredential: (authorization: string) => isTunnToken(authorization, tokens.issuer),
      onRefused: (t: Tunnel, r: Refusal) => refusals.add(t, r),
      heldElsewhere: this.#heldElsewhere,
      maxHeadSize: c.maxHeadSize,
      idleTimeoutMs: c.idleTimeoutMs,
      headTimeoutMs: c.headTimeoutMs,
    };
    gateway = new Gateway(gatewayOpts);
    // In dev, plain HTTP is served, except for an HTTP tunnel whose TLS ends at its agent (308: the relay cannot read it);
    // a tls tunnel (--terminate-at agent or not) answers 426 from the gateway, as it speaks TLS end to end.
    const httpAtAgent = (host: string): boolean => {
      const t = agentTls.agentTunnel(hostnameOf(host));
      return !!t && (t.options.kind ?? 'http') === 'http';
    };
    const toHttps = (head: MessageHead, host: string) => (c.dev && !httpAtAgent(host) ? undefined : pages.movedToHttps(httpsUrl(host, this.info.httpsPort, head.target)));
    const plainHook = (head: MessageHead, host: string) => {
      const r = ext.plainHook?.(head.target, host);
      return r instanceof Promise ? r.then((x) => x ?? toHttps(head, host)) : (r ?? toHttps(head, host));
    };
    const plainGateway = new Gateway({ ...gatewayOpts, heldElsewhere: undefined, plainHook });
    this.#gateways = [gateway, plainGateway];
    const tcpIdleMs = c.kinds?.tcpIdleMs ?? DEFAULT_TCP_IDLE_MS;
    const pt = (passthrough = createTlsPassthrough({ directory: this.#directory, idleTimeoutMs: tcpIdleMs, logger: log }));
    const onPublicTls = (s: TLSSocket): void => {
      const name = s.servername || undefined;
      const t = pt.backendTcp(name);
      if (t) pt.carryTerminated(s, t);
      // A --backend tcp tunnel another relay holds: TLS ended here, its plain bytes go there (its --allow-ip is checked there).
      else if (name && this.#cluster?.tlsTcpElsewhere(name)) this.#cluster.carryTerminated(s, name, tcpIdleMs);
      else gateway.accept(s, true, cleanIp(s.remoteAddress));
    };
    const tlsServers = createTlsServers({ certs: ext.certs, domain: c.domain, ownContext: () => ownCtx, logger: log, onAgentLink: (s) => tunnels.acceptAgent(s), onPublic: onPublicTls });
    const cluster = this.#cluster;
    const elsewhere = cluster && { kindOf: (h: string) => cluster.kindElsewhere(h), open: (h: string, kind: ConnectKind, p: ConnectPrincipal, client: string, method: 'check' | 'open') => cluster.openConnect(h, kind, linkUserOf(p, method), client) };
    const connect = (connectRoute = createConnectRoute({ certs: ext.certs, domain: c.domain, ownContext: () => ownCtx, tokens, store, directory: this.#directory, allows: access.allows, recordEvent: (e) => void this.recordEvent(e), idleTimeoutMs: tcpIdleMs, logger: log, elsewhere }));
    this.#closers.push(() => connect.close());
    const edge = new Edge(
      {
        connect: (s) => connect.accept(s),
        'plain-http': (s) => plainGateway.accept(s, false, cleanIp(s.remoteAddress)),
        'agent-link': (s) => tlsServers.agentLink(s),
        'acme-tls-alpn': (s, h) => tlsServers.acmeTlsAlpn(s, h.serverName!),
        'terminate-tls': (s) => tlsServers.publicTls(s),
        // Every "raw TLS to an agent" case: TLS at the agent (issue 12) or tls passthrough (issue 11).
        'tls-to-agent': (s, h) => {
          const name = h.serverName!;
          if (agentTls.tlsEndsAtAgent(name)) agentTls.carryTls(s, name, cleanIp(s.remoteAddress));
          else if (pt.endsAtAgent(name) || !this.#cluster?.rawTlsElsewhere(name)) pt.carryRaw(s, name);
          else this.#cluster.carryRawTls(s, name, tcpIdleMs);
        },
        // A CA may validate at any relay: a challenge for an agent on another relay is carried there.
        // A relay's own challenge presented elsewhere in the cluster comes first (read from the database), then the holder's agent.
        'acme-tls-alpn-to-agent': (s, h) => {
          const name = h.serverName!;
          const cluster = this.#cluster;
          if (agentTls.agentAnswersAlpnChallenge(name) || !cluster) agentTls.carryAlpnChallenge(s, name);
          else if (ext.certs.sharedAlpnChallenges) tlsServers.acmeTlsAlpn(s, name, (rest) => cluster.carryRawTls(rest, name, 30_000, 'acme-tls-alpn'));
          else cluster.carryRawTls(s, name, 30_000, 'acme-tls-alpn');
        },
      },
      {
        relayAnswersAlpnChallenge: (name) => (ext.certs.hasAlpnChallenge ? ext.certs.hasAlpnChallenge(name) : ext.certs.alpnChallengeContext?.(name) !== undefined),
        relayMayAnswerAlpnChallenge: ext.certs.sharedAlpnChallenges ? () => true : undefined,
        tlsEndsAtAgent: (name) => agentTls.tlsEndsAtAgent(name) || pt.endsAtAgent(name) || !!this.#cluster?.rawTlsElsewhere(name),
        agentAnswersAlpnChallenge: (name) => agentTls.agentAnswersAlpnChallenge(name) || !!this.#cluster?.servesElsewhere(name),
      },
      log,
    );
    const httpsPort = await listenOn(this.#listeners, 'HTTPS', c.httpsPort, c.listen, (s) => edge.accept('https', s));
    const httpPort = await listenOn(this.#listeners, 'HTTP', c.httpPort, c.listen, (s) => edge.accept('http', s));
    reserved.push(httpsPort, httpPort);
    const info: RelayInfo = (this.#info = { domain: c.domain, httpsPort, httpPort, caPath: ext.caPath, url: `https://${c.domain}${httpsPort === 443 ? '' : ':' + httpsPort}`, certificate: 'pending' });
    const identity = (this.#identity = this.#createIdentity(store, tokens, box, info.url));
    tunnels.setChecks({
      validateAllow: (accountId, allow) => identity.policy.validate(accountId, allow),
      registerGrants: (accountId, host, ref, allow, seconds) => identity.grants.registerFor(accountId, host, ref, allow, seconds),
      tokenRefused: ({ err, token, ip }) => this.recordEvent({ kind: isTunnError(err, 'AUTH_TOKEN_REVOKED') ? 'token_revoked_used' : 'token_invalid', ip: cleanIp(ip), accountId: refusedTokenOwner(err, token), detail: 'agent hello' }),
    });
    // Keys rotated or retired by `tunn relay keys` (or another relay) take effect within a minute
    // (in a cluster at once through NOTIFY, identity-changes.ts; this re-read is its safety net).
    const keyTimer = setInterval(() => void tokens.reloadIfStale().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'reloading signing keys failed')), c.cluster ? 10_000 : 60_000);
    keyTimer.unref();
    this.#closers.push(() => clearInterval(keyTimer));
    const revocation = new LiveRevocation({
      store, clock: this.#clock, logger: log, gateways: [...this.#gateways, connect.table], agents: () => tunnels.sessions, directory: this.#directory,
      allows: access.allows,
      cached: identity.gate.outageCache,
      outageWindowMs: c.identityOutageWindowMs,
      domainLost: (t) => lostDomainReason(store, c.domain, t),
      onTunnelEnded: (t) => tunnels.gone(t.host),
      // A key retired elsewhere: this relay refuses its tokens from now on too.
      onRetiredKeys: (kids) => {
        if ([...kids].some((k) => !tokens.isRetired(k))) void tokens.reload().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'reloading signing keys failed'));
      },
    });
    revocation.start();
    this.#identityChanges = new IdentityChanges({
      logger: log,
      reloadKeys: () => tokens.reload(),
      forgetCaches: () => {
        identity.groups.forgetCached();
        identity.grants.forgetCached();
      },
      sweep: () => revocation.sweepAfresh(),
    });
    this.#closers.push(() => revocation.stop());
    const control = createTunnelControl({ directory: this.#directory, gateways: this.#gateways, urlsFor: (h) => this.urlsFor(h), onStopped: (t, why) => (log.info({ host: t.host, email: t.email }, why), tunnels.gone(t.host)) });
    api = createApiApp(identity, { domains: ext.domainApi, logger: log, tunnels: control, agentCerts: () => agentTls.reports(), clusterStatus: c.cluster ? () => clusterStatus(store, this.#clock) : undefined });
    info.certificate = await startOwnCertificate(ext.certs, c.domain, log, (ctx) => (ownCtx = ctx));
    return info;
  }

  /** Hosts whose visitors the relay may redirect back to after login. */
  isServedHost(host: string): boolean {
    const d = this.config.domain;
    return host === d || this.#directory.get(host) !== undefined || this.#servesElsewhere(host) || host.endsWith('.' + d);
  }

  /** TLS that ends at agents: the names' reported states (`tunn cert list`, /v1/certificates). */
  get agentTls(): AgentTlsRelay {
    if (!this.#agentTls) throw new TypeError('relay not started');
    return this.#agentTls;
  }

  /**
   * Whether a tunnel whose TLS the relay terminates is live at `host` here (certificates are
   * obtained on demand for those): http tunnels and `tunn tls --backend tcp`, not raw TLS
   * passthrough (the target holds its certificate) nor tcp/udp (no TLS at that name). In a
   * cluster, also a tunnel another relay serves (visitors here are carried there).
   */
  isLiveHost(host: string): boolean {
    const o = this.#directory.get(host)?.options;
    if (!o) return this.#servesElsewhere(host) && isTerminatedKind(this.#cluster?.leaseKindElsewhere(host));
    const kind = o.kind ?? 'http';
    return kind === 'http' || (kind === 'tls' && o.backend === 'tcp');
  }

  /** Records a security or operations event (its owner sees it in `tunn events`); failures are logged. */
  async recordEvent(e: RecordEvent): Promise<void> {
    await this.#identity?.events.record(e).catch((err: unknown) => this.#logger.warn({ err: errorMessage(err), kind: e.kind }, 'recording a security event failed'));
  }

  /** Runs `fn` when the relay closes, before its own parts (newest first). */
  onClose(fn: () => Promise<void> | void): void {
    this.#closers.push(fn);
  }

  async close(): Promise<void> {
    for (const fn of this.#closers.splice(0).reverse()) {
      await Promise.resolve()
        .then(fn)
        .catch((err: unknown) => this.#logger.warn({ err: errorMessage(err) }, 'closing a part of the relay failed'));
    }
    for (const l of this.#listeners) l.close();
    this.#tunnels?.closeAll();
    for (const g of this.#gateways) g.closeAll();
    await this.#identity?.close();
    await this.#parts?.store.close();
  }

  /** Public URL of a tunnel host: HTTPS, and plain HTTP too in dev. */
  urlsFor(host: string): string[] {
    const i = this.info;
    const https = httpsUrl(host, i.httpsPort, '');
    if (!this.config.dev) return [https];
    return [https, `http://${host}${i.httpPort === 80 ? '' : ':' + i.httpPort}`];
  }

  #createIdentity(store: Store, tokens: TokenService, box: SecretBox, relayUrl: string): Identity {
    const c = this.config;
    const log = this.#logger;
    return createIdentity({
      store, tokens, box, clock: this.#clock, relayUrl, dev: c.dev, providers: c.providers, magicLink: c.magicLink, adminEmails: c.adminEmails,
      isServedHost: (h) => this.isServedHost(h),
      idp: {
        ...c.idp,
        onDirectoryError: (err) => {
          this.#metrics.directoryErrors.inc();
          log.error({ err: errorMessage(err) }, 'the group directory did not answer; access that needs it is refused until it does');
        },
        // The visitor's page says only what to do; the cause is here, under the page's request id.
        onUnconfirmed: (e) => log.warn({ reqId: e.requestId, email: e.email, host: e.host, detail: e.details.join('; ') }, 'refused: IdP groups could not be confirmed'),
      },
      identityOutageWindowMs: c.identityOutageWindowMs,
      onError: (err) => log.error({ err: errorMessage(err) }, 'identity error'),
    });
  }


}

function httpsUrl(host: string, port: number, path: string): string {
  return `https://${host}${port === 443 ? '' : `:${port}`}${path.startsWith('/') ? path : path ? '/' : ''}`;
}
