import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import tls, { type SecureContext, type TLSSocket } from 'node:tls';
import { getRequestListener } from '@hono/node-server';
import { createApiApp } from '../api/app.ts';
import { lostDomainReason } from '../api/domain-access.ts';
import type { DomainApiOptions } from '../api/domains.ts';
import { isTunnToken, refusedTokenOwner } from '../auth/bearer.ts';
import type { TunnelPolicy } from '../auth/gate.ts';
import { createIdentity, type Identity } from '../auth/identity.ts';
import type { GroupDirectory } from '../auth/idp-groups.ts';
import type { LoginProviderConfig } from '../auth/oidc.ts';
import { parseIpAllowList } from '../auth/ip-allow.ts';
import { parseRateLimit } from '../auth/rate-limit.ts';
import { TokenService } from '../auth/tokens.ts';
import type { Clock } from '../lib/clock.ts';
import { errorMessage, isTunnError, TunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { loadSecretKey, SecretBox } from '../lib/secret-box.ts';
import { bearerIs } from '../lib/secret-compare.ts';
import { ALPN_TUNNEL, checkTunnelOptions, type TunnelOptions } from '../protocol/messages.ts';
import { claimName, type Account } from '../store/accounts.ts';
import { openStore, type Store } from '../store/store.ts';
import { AgentSession, type RegisteredTunnel } from './agent-session.ts';
import { parseClientHello } from './client-hello.ts';
import { Gateway, type Gate } from './gateway.ts';
import { LiveRevocation } from './live-revocation.ts';
import { RelayMetrics } from './metrics.ts';
import { randomName, validateName } from './names.ts';
import { RefusalReports } from './refusal-reports.ts';
import { startOwnCertificate, type OwnCertificateSource, type OwnCertificateState } from './own-certificate.ts';
import { htmlPage, type LocalResponse } from './pages.ts';
import { TunnelRegistry, type Tunnel } from './registry.ts';
import { createTunnelControl } from './tunnel-control.ts';
import { parseAllowUpgrade } from './upgrades.ts';

// relay.ts wires the parts: store, tokens, certificates, the edge on the HTTPS port (agent
// links by ALPN, public TLS terminated), the plain-HTTP port, the gateway, agent sessions and
// the relay's own host (API, metrics).

export interface RelayConfig {
  domain: string;
  /** 0 = pick a free port. */
  httpsPort: number;
  httpPort: number;
  /** Address to listen on. */
  listen: string;
  dataDir: string;
  dev: boolean;
  tlsCert?: string;
  tlsKey?: string;
  /** SQLite path or postgres:// URL; default: tunn.db in the data dir. */
  storeUrl?: string;
  /** TUNN_SECRET_KEY: key that seals secrets at rest; default: a key file in the data dir. */
  secretKey?: string;
  idleTimeoutMs: number;
  headTimeoutMs: number;
  maxHeadSize: number;
  /** Bearer token that may read /metrics from non-loopback addresses. */
  metricsToken?: string;
  /** Login methods offered on the relay's login page (OIDC issuers, Google, GitHub). */
  providers?: LoginProviderConfig[];
  /** Email magic links: SMTP URL and From address. */
  magicLink?: { smtpUrl: string; from: string };
  /** Accounts that may list every account's security events. */
  adminEmails?: string[];
  /** IdP groups: how long membership is trusted (--idp-refresh) and the directory to ask (LDAP). */
  idp?: { refreshMs?: number; directory?: GroupDirectory };
}

export interface RelayDeps {
  logger: Logger;
  clock: Clock;
}

/** Where TLS certificates for the public side come from (static files, dev CA, ACME manager). */
export interface CertSource extends OwnCertificateSource {
  /** TLS-ALPN-01: the challenge context for a name, if one is pending. */
  alpnChallengeContext?(servername: string): SecureContext | undefined;
}

/** Hooks other parts (identity, custom domains) plug in. */
export interface RelayExtensions {
  gate?: Gate;
  /** Answers requests for the relay's own host that the relay does not handle itself. */
  relayHostHandler?: (req: IncomingMessage, res: ServerResponse) => void;
  /** Picks the domain a tunnel is served under; default: the relay's domain only. */
  resolveDomain?: (account: Account, requested: string | undefined) => Promise<string>;
  /** Checks a tunnel's options (e.g. allow-list entries) before it goes live. */
  validateTunnel?: (account: Account, opts: TunnelOptions) => Promise<void>;
  /** Hosts other than the relay zone and live tunnels that this relay serves (custom domains). */
  isServedHost?: (host: string) => boolean;
  certs?: CertSource;
  /** Custom domains and certificates for /v1/domains and /v1/certs. */
  domainApi?: DomainApiOptions;
  plainHook?: (path: string, host: string) => LocalResponse | undefined;
}

export interface RelayInfo {
  domain: string;
  httpsPort: number;
  httpPort: number;
  caPath?: string;
  url: string;
  /** The relay's own certificate: served now, or still being obtained (ACME; see own-certificate.ts). */
  certificate: OwnCertificateState;
}

export class Relay {
  readonly config: RelayConfig;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly registry = new TunnelRegistry();
  readonly metrics = new RelayMetrics();
  store!: Store;
  tokens!: TokenService;
  identity!: Identity;
  box!: SecretBox;
  ext: RelayExtensions = {};
  #gateway!: Gateway;
  #plainGateway!: Gateway;
  #revocation: LiveRevocation | undefined;
  readonly #policies = new WeakMap<TunnelOptions, TunnelPolicy>();
  #sessions = new Set<AgentSession>();
  /** Requests refused at the edge, reported to the tunnel's agent at most once a second. */
  readonly #refusals = new RefusalReports({ send: (t, m) => t.sessions.find((s) => s.alive)?.send(m) });
  #httpsServer: NetServer | undefined;
  #httpServer: NetServer | undefined;
  #agentTls!: tls.Server;
  #publicTls!: tls.Server;
  #ownHost!: http.Server;
  #certs!: CertSource;
  #caPath: string | undefined;
  #info: RelayInfo | undefined;
  #api: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  #keyTimer: NodeJS.Timeout | undefined;

  constructor(config: RelayConfig, deps: RelayDeps) {
    this.config = config;
    this.logger = deps.logger;
    this.clock = deps.clock;
  }

  get info(): RelayInfo {
    if (!this.#info) throw new TypeError('relay not started');
    return this.#info;
  }

  /** Opens the store and keys; call before start() to plug extensions that need them. */
  async init(): Promise<void> {
    const c = this.config;
    this.box = new SecretBox(loadSecretKey(c.secretKey, join(c.dataDir, 'secret.key')));
    this.store = await openStore(c.storeUrl ?? join(c.dataDir, 'tunn.db'));
    this.tokens = new TokenService({ store: this.store, box: this.box, clock: this.clock, issuer: 'tunn' });
    await this.tokens.init();
  }

  async start(ext: RelayExtensions = {}): Promise<RelayInfo> {
    if (!this.store) await this.init();
    this.ext = ext;
    const c = this.config;
    this.#certs = ext.certs ?? (await this.#defaultCerts());
    // The relay's own certificate is fetched once the listeners are up: an HTTP-01 or
    // TLS-ALPN-01 challenge for it (--relay-certs per-host) is answered on those listeners.
    // Start-up does not wait for the CA: until it comes, handshakes for it fail with an alert.
    let relayCtx: SecureContext | undefined;

    this.#ownHost = http.createServer((req, res) => this.#serveOwnHost(req, res));
    this.#ownHost.keepAliveTimeout = 60_000;
    this.#gateway = new Gateway({
      registry: this.registry,
      logger: this.logger,
      gate: ext.gate ?? this.#identityGate(),
      isRelayHost: (h) => h === c.domain,
      serveRelayHost: (conn) => this.#ownHost.emit('connection', conn),
      isKnownHost: (host) => this.#isClaimedName(host),
      isTunnCredential: (authorization) => isTunnToken(authorization, this.tokens.issuer),
      onRefused: (t, r) => this.#refusals.add(t, r),
      maxHeadSize: c.maxHeadSize,
      idleTimeoutMs: c.idleTimeoutMs,
      headTimeoutMs: c.headTimeoutMs,
    });

    // Agents get the relay's current certificate (a renewed one as soon as it exists).
    this.#agentTls = tls.createServer({
      SNICallback: (_name, cb) => {
        Promise.resolve(this.#certs.contextFor(c.domain)).then(
          (ctx) => cb(null, ctx ?? relayCtx),
          () => cb(null, relayCtx),
        );
      },
      ALPNProtocols: [ALPN_TUNNEL],
      handshakeTimeout: 10_000,
    });
    this.#agentTls.on('secureConnection', (s: TLSSocket) => this.#onAgentSocket(s));
    this.#agentTls.on('tlsClientError', (err) => this.logger.debug({ err: err.message }, 'agent TLS handshake failed'));
    this.#publicTls = tls.createServer({
      SNICallback: (name, cb) => {
        Promise.resolve(this.#certs.contextFor(name)).then(
          (ctx) => cb(null, ctx ?? undefined),
          (err: unknown) => cb(err as Error),
        );
      },
      ALPNProtocols: ['http/1.1'],
      handshakeTimeout: 10_000,
    });
    this.#publicTls.on('secureConnection', (s: TLSSocket) => this.#gateway.accept(s, true, cleanIp(s.remoteAddress)));
    this.#publicTls.on('tlsClientError', (err) => this.logger.debug({ err: err.message }, 'public TLS handshake failed'));

    this.#httpsServer = net.createServer((s) => this.#onEdgeSocket(s));
    this.#httpsServer.listen(c.httpsPort, c.listen);
    await listening(this.#httpsServer, 'HTTPS', c.httpsPort);
    const plainGateway = (this.#plainGateway = new Gateway({
      ...this.#gateway.opts,
      plainHook: (head, host) => {
        const path = head.target;
        const hooked = ext.plainHook?.(path, host);
        if (hooked) return hooked;
        if (c.dev) return undefined;
        const port = this.info.httpsPort === 443 ? '' : `:${this.info.httpsPort}`;
        const location = `https://${host}${port}${path.startsWith('/') ? path : '/'}`;
        return htmlPage(308, 'Moved to HTTPS', `This relay serves HTTPS only: <a href="${location}">continue</a>.`, { headers: [['Location', location]] });
      },
    }));
    this.#httpServer = net.createServer((s) => plainGateway.accept(s, false, cleanIp(s.remoteAddress)));
    this.#httpServer.listen(c.httpPort, c.listen);
    await listening(this.#httpServer, 'HTTP', c.httpPort);

    const httpsPort = (this.#httpsServer.address() as net.AddressInfo).port;
    const httpPort = (this.#httpServer.address() as net.AddressInfo).port;
    this.#info = { domain: c.domain, httpsPort, httpPort, caPath: this.#caPath, url: `https://${c.domain}${httpsPort === 443 ? '' : ':' + httpsPort}`, certificate: 'pending' };
    this.identity = createIdentity({
      store: this.store,
      tokens: this.tokens,
      clock: this.clock,
      relayUrl: this.#info.url,
      isServedHost: (h) => this.isServedHost(h),
      dev: c.dev,
      providers: c.providers,
      magicLink: c.magicLink,
      adminEmails: c.adminEmails,
      box: this.box,
      idp: {
        ...c.idp,
        onDirectoryError: (err) => {
          this.metrics.directoryErrors.inc();
          this.logger.error({ err: errorMessage(err) }, 'the group directory did not answer; access that needs it is refused until it does');
        },
        // The visitor's page says only what to do; the cause is here, under the page's request id.
        onUnconfirmed: (e) => this.logger.warn({ reqId: e.requestId, email: e.email, host: e.host, detail: e.details.join('; ') }, 'refused: IdP groups could not be confirmed'),
      },
      onError: (err) => this.logger.error({ err: errorMessage(err) }, 'identity error'),
    });
    // Keys rotated or retired by `tunn relay keys` (or another relay) take effect within a minute.
    this.#keyTimer = setInterval(() => void this.tokens.reloadIfStale().catch((err: unknown) => this.logger.warn({ err: errorMessage(err) }, 'reloading signing keys failed')), 60_000);
    this.#keyTimer.unref();
    this.#startRevocation();
    const tunnels = createTunnelControl({
      registry: this.registry,
      gateways: [this.#gateway, this.#plainGateway],
      urlsFor: (h) => this.urlsFor(h),
      onStopped: (t, why) => {
        this.logger.info({ host: t.host, email: t.email }, why);
        this.#tunnelGone(t.host);
      },
    });
    this.#api = getRequestListener(createApiApp(this.identity, { domains: ext.domainApi, logger: this.logger, tunnels }).fetch);
    this.#info.certificate = await startOwnCertificate(this.#certs, c.domain, this.logger, (ctx) => (relayCtx = ctx));
    return this.#info;
  }

  /** Hosts whose visitors the relay may redirect back to after login. */
  isServedHost(host: string): boolean {
    const d = this.config.domain;
    return host === d || this.registry.get(host) !== undefined || host.endsWith('.' + d) || (this.ext.isServedHost?.(host) ?? false);
  }

  /** Cuts live connections, agent sessions and tunnels whose credential, allow-list entry or domain went away. */
  #startRevocation(): void {
    this.#revocation = new LiveRevocation({
      store: this.store,
      clock: this.clock,
      logger: this.logger,
      gateways: [this.#gateway, this.#plainGateway],
      agents: () => this.#sessions,
      registry: this.registry,
      allows: (t, who) => this.identity.policy.allows(this.#policyOf(t), { email: who.email, idpGroups: () => this.identity.idpGroups.lookup({ email: who.email, rootSessionId: who.via === 'session' ? who.rootSessionId : undefined, accountId: t.accountId }) }),
      domainLost: (t) => lostDomainReason(this.store, this.config.domain, t),
      onTunnelEnded: (t) => this.#tunnelGone(t.host),
    });
    this.#revocation.start();
  }

  /** Identity's view of a tunnel's edge controls (one object per options object, so caches keyed on it hold). */
  #policyOf(t: Tunnel): TunnelPolicy {
    const o = t.options;
    let p = this.#policies.get(o);
    if (!p) {
      // With --for the -a entries are grants of this registration (src/auth/grants.ts), not lasting entries.
      const grantRef = o.grantFor?.ref;
      p = { tunnelId: t.host, host: t.host, grantRef, ownerAccountId: t.accountId, ownerEmail: t.email, allow: grantRef ? [] : o.allow, public: o.public, basicAuth: o.basicAuth, allowIps: o.allowIps, rateLimit: o.rateLimit };
      this.#policies.set(o, p);
    }
    return p;
  }

  /** The per-request gate: identity's policy for private tunnels; public tunnels without edge controls skip it. */
  #identityGate(): Gate {
    const open = (o: TunnelOptions): boolean => !!o.public && !o.basicAuth && !o.allowIps?.length && !o.rateLimit;
    return {
      passes: (t) => open(t.options),
      check: (req, t) => {
        const o = t.options;
        if (open(o)) return { kind: 'allow', setHeaders: [], removeHeaders: [] };
        if (!this.identity) return { kind: 'respond', status: 503, headers: [['Retry-After', '1']], body: 'the relay is starting\n' };
        return this.identity.gate.check(req, this.#policyOf(t));
      },
    };
  }

  async close(): Promise<void> {
    clearInterval(this.#keyTimer);
    this.#revocation?.stop();
    this.#refusals.stop();
    this.#httpsServer?.close();
    this.#httpServer?.close();
    for (const s of this.#sessions) s.close();
    this.#gateway?.closeAll();
    this.#ownHost?.closeAllConnections();
    await this.identity?.close();
    await this.store?.close();
  }

  /** Public URL of a tunnel host: HTTPS, and plain HTTP too in dev. */
  urlsFor(host: string): string[] {
    const i = this.info;
    const https = `https://${host}${i.httpsPort === 443 ? '' : ':' + i.httpsPort}`;
    if (!this.config.dev) return [https];
    return [https, `http://${host}${i.httpPort === 80 ? '' : ':' + i.httpPort}`];
  }

  async #defaultCerts(): Promise<CertSource> {
    const c = this.config;
    if (c.tlsCert || c.tlsKey) {
      if (!c.tlsCert || !c.tlsKey) throw new TunnError('CONFIG_INVALID', '--tls-cert and --tls-key go together: pass both');
      let ctx: SecureContext;
      try {
        ctx = tls.createSecureContext({ cert: readFileSync(c.tlsCert), key: readFileSync(c.tlsKey) });
      } catch (err) {
        throw new TunnError('CONFIG_INVALID', `cannot load the TLS certificate ${c.tlsCert} / key ${c.tlsKey}: ${errorMessage(err)}`, { cause: err });
      }
      return { contextFor: () => ctx };
    }
    if (!c.dev) {
      throw new TunnError('CONFIG_INVALID', 'the relay needs a TLS certificate: pass --tls-cert and --tls-key, or run with --dev for a local dev CA');
    }
    // The dev CA (@peculiar/x509 and its ASN.1 stack) is loaded only by a --dev relay.
    const { ensureDevCa, issueLeaf } = await import('../certs/dev-ca.ts');
    const ca = await ensureDevCa(c.dataDir, c.domain);
    if (ca.replaced) this.logger.warn({ event: 'dev_ca_replaced', caPath: ca.certPath }, ca.replaced);
    this.#caPath = ca.certPath;
    const leaf = await issueLeaf(ca, [c.domain, `*.${c.domain}`, 'localhost', '127.0.0.1', '::1']);
    const ctx = tls.createSecureContext({ cert: leaf.certPem, key: leaf.keyPem });
    return { contextFor: () => ctx };
  }

  /** The HTTPS port: read the ClientHello, then route by ALPN. */
  #onEdgeSocket(socket: Socket): void {
    // Agent links and public TLS connections both carry small interactive messages: no Nagle.
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    socket.setTimeout(10_000, () => socket.destroy());
    let buf: Buffer = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      const r = parseClientHello(buf);
      if (r.kind === 'need-more') return;
      socket.removeListener('data', onData);
      socket.pause();
      socket.setTimeout(0);
      if (r.kind === 'not-tls') {
        if (/^[A-Z]+ /.test(buf.toString('latin1', 0, 8))) {
          socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 47\r\n\r\nThis port speaks HTTPS: use an https:// URL.\r\n\r\n');
        } else {
          socket.destroy();
        }
        return;
      }
      socket.unshift(buf);
      const { serverName, alpn } = r.info;
      if (alpn.includes(ALPN_TUNNEL)) {
        this.#agentTls.emit('connection', socket);
      } else if (alpn.includes('acme-tls/1') && serverName && this.#certs.alpnChallengeContext?.(serverName)) {
        const ctx = this.#certs.alpnChallengeContext(serverName)!;
        const t = new tls.TLSSocket(socket, { isServer: true, secureContext: ctx, ALPNProtocols: ['acme-tls/1'] });
        t.on('secure', () => t.end());
        t.on('error', () => socket.destroy());
      } else {
        this.#publicTls.emit('connection', socket);
      }
    };
    socket.on('data', onData);
  }

  #onAgentSocket(socket: TLSSocket): void {
    const session = new AgentSession(socket, {
      store: this.store,
      tokens: this.tokens,
      logger: this.logger,
      relayDomain: this.config.domain,
      helloTimeoutMs: 10_000,
      pingIntervalMs: 15_000,
      register: (s, account, opts) => this.#register(s, account, opts),
      unregister: (s, id) => {
        const t = this.registry.detachTunnel(s, id);
        if (t) this.#tunnelGone(t.host);
      },
      onClose: (s) => {
        this.#sessions.delete(s);
        this.metrics.agents.set(this.#sessions.size);
        for (const t of this.registry.detach(s)) this.#tunnelGone(t.host);
      },
      onTokenRefused: ({ err, token, ip }) => {
        const kind = isTunnError(err, 'AUTH_TOKEN_REVOKED') ? 'token_revoked_used' : 'token_invalid';
        void this.identity?.events.record({ kind, ip: cleanIp(ip), accountId: refusedTokenOwner(err, token), detail: 'agent hello' }).catch(() => {});
      },
    });
    this.#sessions.add(session);
    this.metrics.agents.set(this.#sessions.size);
  }

  #tunnelGone(host: string): void {
    this.metrics.tunnels.set(this.registry.size);
    if (!this.registry.get(host)) this.metrics.forget(host);
    this.logger.info({ host }, 'tunnel offline');
  }

  async #register(session: AgentSession, account: Account, opts: TunnelOptions): Promise<RegisteredTunnel> {
    const domain = this.ext.resolveDomain ? await this.ext.resolveDomain(account, opts.domain) : this.#defaultDomain(opts.domain);
    let name: string;
    if (opts.name) {
      name = validateName(opts.name);
      await claimName(this.store, domain, name, account.id, this.clock.now());
    } else {
      name = await this.#claimRandomName(domain, account);
    }
    await this.#validateTunnel(account, opts);
    await this.ext.validateTunnel?.(account, opts);
    const host = `${name}.${domain}`;
    // Counted from the first registration of this agent run: re-sending register does not extend it.
    if (opts.grantFor) await this.identity.grants.registerFor(account.id, host, opts.grantFor.ref, opts.allow, opts.grantFor.seconds);
    const existing = this.registry.get(host);
    this.registry.attach(
      { id: opts.id, host, name, domain, accountId: account.id, email: account.email, agentId: session.agentId, options: opts, metrics: this.metrics.forTunnel(host) },
      session,
      this.clock.now(),
    );
    this.metrics.tunnels.set(this.registry.size);
    if (!existing || existing.agentId !== session.agentId) this.logger.info({ host, email: account.email }, 'tunnel online');
    const urls = this.urlsFor(host);
    return { name, host, url: urls[0]!, urls };
  }

  /** Whether `host` is <name>.<domain> for a name some account holds (its agent may be away). */
  async #isClaimedName(host: string): Promise<boolean> {
    const dot = host.indexOf('.');
    if (dot <= 0) return false;
    const row = await this.store.db.selectFrom('names').select('account_id').where('domain', '=', host.slice(dot + 1)).where('name', '=', host.slice(0, dot)).executeTakeFirst();
    return row !== undefined;
  }

  /** Checks the options an agent sent: allow-list entries (groups must exist), edge controls. */
  async #validateTunnel(account: Account, opts: TunnelOptions): Promise<void> {
    // The message's shape was checked when it was read (tunnelOptionsSchema); here what it means.
    checkTunnelOptions(opts);
    await this.identity.policy.validate(account.id, opts.allow);
    if (opts.allowIps?.length) parseIpAllowList(opts.allowIps);
    if (opts.rateLimit?.perIp !== undefined) parseRateLimit(opts.rateLimit.perIp, '--rate-limit');
    if (opts.rateLimit?.perTunnel !== undefined) parseRateLimit(opts.rateLimit.perTunnel, '--rate-limit-tunnel');
    if (opts.allowUpgrade !== undefined) opts.allowUpgrade = parseAllowUpgrade(opts.allowUpgrade);
  }

  #defaultDomain(requested: string | undefined): string {
    if (requested && requested.toLowerCase() !== this.config.domain) {
      throw new TunnError('NOT_FOUND', `the domain ${requested} is not served by this relay; leave out -d to use ${this.config.domain}`);
    }
    return this.config.domain;
  }

  async #claimRandomName(domain: string, account: Account): Promise<string> {
    for (let i = 0; i < 10; i++) {
      const n = randomName();
      try {
        await claimName(this.store, domain, n, account.id, this.clock.now());
        return n;
      } catch (err) {
        if (!(err instanceof TunnError && err.code === 'NAME_TAKEN')) throw err;
      }
    }
    throw new TunnError('UNAVAILABLE', 'could not find a free random name; pass one with -n');
  }

  #serveOwnHost(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    if (url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (url === '/metrics') {
      const ip = cleanIp(req.socket.remoteAddress);
      const token = this.config.metricsToken;
      // Constant-time over digests: `===` would leak the token byte by byte through timing.
      const allowed = isLoopback(ip) || bearerIs(req.headers.authorization, token);
      if (!allowed) {
        res.writeHead(403, { 'content-type': 'text/plain' }).end('metrics are served to loopback clients, or with Authorization: Bearer <--metrics-token>\n');
        return;
      }
      this.metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(body),
        (err: unknown) => res.writeHead(500).end(errorMessage(err)),
      );
      return;
    }
    if (url === '/') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(`tunn relay for ${this.config.domain}\nExpose a service: tunn <port> --relay ${this.info.url}\nSign in: ${this.info.url}/login\n`);
      return;
    }
    const handler = this.ext.relayHostHandler ?? this.#api;
    if (handler) {
      handler(req, res);
      return;
    }
    res.writeHead(503, { 'content-type': 'text/plain' }).end('the relay is starting\n');
  }
}

async function listening(server: NetServer, what: string, port: number): Promise<void> {
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e))]);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint = code === 'EADDRINUSE' ? `port ${port} is in use: pick another with --${what.toLowerCase()}-port (0 = any free port)` : code === 'EACCES' ? `port ${port} needs privileges: pick a port above 1023` : errorMessage(err);
    throw new TunnError('CONFIG_INVALID', `cannot listen for ${what}: ${hint}`, { cause: err });
  }
}

export function cleanIp(ip: string | undefined): string {
  if (!ip) return '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.');
}
