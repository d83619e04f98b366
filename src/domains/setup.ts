import { readFileSync } from 'node:fs';
import tls, { type SecureContext } from 'node:tls';
import { Dns01Solver } from '../acme/dns01.ts';
import { Http01Solver } from '../acme/http01.ts';
import { SharedChallenges } from '../acme/shared-challenges.ts';
import type { ChallengeSolver, ChallengeType } from '../acme/solver.ts';
import { TlsAlpn01Solver } from '../acme/tls-alpn01.ts';
import { createAlerter, type AlertHook } from '../certs/alerts.ts';
import { relayDecisionFunc, type DecisionFunc } from '../certs/decision.ts';
import { FilesIssuer } from '../certs/files-issuer.ts';
import type { Issuer } from '../certs/issuer.ts';
import type { ManagedCertificate } from '../certs/managed.ts';
import { CertManager } from '../certs/manager.ts';
import { CertProbe } from '../certs/probe.ts';
import type { Dns01Provider } from '../dns/dns01-provider.ts';
import { startRelayDns, type RelayDns } from '../dns/relay-dns.ts';
import { SharedTxt } from '../dns/shared-txt.ts';
import { systemClock, type Clock } from '../lib/clock.ts';
import { errorMessage, TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import type { Logger } from '../lib/logger.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { Account } from '../store/accounts.ts';
import type { Store } from '../store/store.ts';
import { customDomainDecider, probeRecorder, relayCertBackends } from './cert-lifecycle.ts';
import { domainByName } from './records.ts';
import { resolveTunnelDomain, type TunnelTlsKind } from './resolution.ts';

// Custom domains and certificates for the relay (seed 002 "Custom Domains", seed 001
// "Certificate strategies"): the relay's DNS server, the issuer (ACME, static files or the
// dev CA), the certificate manager on the relay's database with custom domains' lifecycle,
// alerts and the drift probe, and the pieces the relay plugs in: the certificates for the TLS
// edge, the HTTP-01 hook for the plain port, and the domain a tunnel is served under.

/** What the relay's TLS edge asks for certificates (the relay's CertSource). */
export interface EdgeCertificates {
  contextFor(servername: string | undefined): SecureContext | undefined | Promise<SecureContext | undefined>;
  /** TLS-ALPN-01: the challenge context for a name, if one is pending (a promise in a cluster, for one presented elsewhere). */
  alpnChallengeContext?(servername: string): SecureContext | undefined | Promise<SecureContext | undefined>;
  /** TLS-ALPN-01: whether a challenge for the name is known to be pending (here, or in the cluster's last read). */
  hasAlpnChallenge?(servername: string): boolean;
  /** A relay of a cluster: challenges other relays present are answered here too (read from the database). */
  sharedAlpnChallenges?: boolean;
  /** Keeps a certificate for the name, obtaining it in the background (ACME only). */
  manage?(servername: string): Promise<ManagedCertificate>;
}

/** An answer the relay's plain-HTTP port sends itself (the relay's LocalResponse). */
export interface PlainResponse {
  status: number;
  headers: [string, string][];
  body: string;
  close?: boolean;
}

export interface CustomDomainsConfig {
  /** The relay's domain. */
  domain: string;
  dataDir: string;
  dev: boolean;
  tlsCert?: string;
  tlsKey?: string;
  /** `--acme-directory`: a URL or letsencrypt / letsencrypt-staging. */
  acmeDirectory?: string;
  acmeEmail?: string;
  /** `--acme-ca FILE`: extra CA for the ACME server's own HTTPS (Pebble). */
  acmeCa?: string;
  /** `--dns-port` (0 = a free port); undefined = no DNS server. */
  dnsPort?: number;
  /** Address the DNS server listens on (default: the relay's listen address). */
  dnsListen?: string;
  /** `--public-ip`: what the relay's zone answers for itself and `*.zone`. */
  publicIps: string[];
  /** `--dns-resolver host:port` for verifying customers' records. */
  dnsResolver?: string;
  strictDomainVerify: boolean;
  certEventToken?: string;
  alertWebhook?: string;
  /** The relay's own names: one `*.R`+`R` certificate via DNS-01 (default), or one per host. */
  relayCerts?: 'wildcard' | 'per-host';
  /**
   * `--acme-challenge`: the challenge types the relay answers, in priority order (default
   * dns-01 when the DNS server runs, then http-01, tls-alpn-01). Wildcards (custom domains,
   * the relay's wildcard) can only use dns-01; other names use the first type the CA offers.
   */
  acmeChallenges?: ChallengeType[];
  /** A relay of a cluster: the zone's ACME TXT values go through the shared database, so every relay's DNS server answers them. */
  sharedTxt?: boolean;
  /** A relay of a cluster: HTTP-01 and TLS-ALPN-01 challenges go through the shared database, so every relay answers them. */
  sharedChallenges?: boolean;
  probeIntervalMs?: number;
  maintainIntervalMs?: number;
}

export interface CustomDomainsDeps {
  store: Store;
  box: SecretBox;
  logger: Logger;
  /** The certificate clock (renewal, retries, expiry alerts): in end-to-end tests the movable TUNN_TEST_CLOCK_FILE clock. */
  clock: Clock;
  /**
   * The clock of everything else here: the domains API (its cert-event HMAC freshness window is
   * an authentication decision) and the shared ACME challenge rows (other relays read them, and
   * a moved clock would delete their live rows as expired). Never the test clock; default the system clock.
   */
  wallClock?: Clock;
  /** Also called for every certificate alert (e.g. to record a security/ops event). */
  onAlert?: AlertHook;
  /** Whether a relay host is a live tunnel (per-host relay certificates only). */
  isLiveHost?: (host: string) => boolean;
  /** `--dns-provider`: DNS-01 records go to the operator's DNS; the relay's DNS server is then off unless --dns-port. */
  dnsProvider?: Dns01Provider;
}

export interface CustomDomains {
  manager: CertManager;
  issuer: Issuer;
  decide: DecisionFunc;
  /** The relay's DNS server, when one runs. */
  dns?: RelayDns;
  dnsPort?: number;
  /** Where DNS-01 values in the relay's zone go (the zone, or the cluster's shared records), when the DNS server runs. */
  dnsTxt?: Dns01Provider;
  /** The dev CA's certificate file (dev without ACME). */
  caPath?: string;
  /** Whether certificates come from an ACME CA (else static files or the dev CA). */
  acme: boolean;
  alert: AlertHook;
  /** For `RelayExtensions`. */
  certs: EdgeCertificates;
  plainHook: (path: string, host: string) => PlainResponse | undefined | Promise<PlainResponse | undefined>;
  resolveDomain: (account: Account, requested: string | undefined, kind?: TunnelTlsKind) => Promise<string>;
  /** For the API (src/api/domains.ts). */
  api: { relayDomain: string; resolver?: string; strict: boolean; manager: CertManager; certEventToken?: string; onAlert: AlertHook; clock: Clock };
  /** Starts renewal and the drift probe against the relay's TLS listener. */
  start(target: { host: string; port: number }): void;
  close(): Promise<void>;
}

/** Splits `--public-ip` values ("1.2.3.4,2001:db8::1" or repeated). */
/** Splits `--acme-challenge` ("tls-alpn-01,dns-01") into challenge types, in order, without repeats. */
export function parseAcmeChallenges(v: string | undefined): ChallengeType[] | undefined {
  if (!v) return undefined;
  const list = v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  for (const t of list) {
    if (t !== 'dns-01' && t !== 'http-01' && t !== 'tls-alpn-01') throw new TunnError('CONFIG_INVALID', `--acme-challenge: unknown challenge type "${t}" (use dns-01, http-01, tls-alpn-01)`);
  }
  return [...new Set(list)] as ChallengeType[];
}

export function parsePublicIps(v: string | string[] | undefined): string[] {
  const list = (Array.isArray(v) ? v : v ? [v] : []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  return [...new Set(list)];
}

export async function createCustomDomains(cfg: CustomDomainsConfig, deps: CustomDomainsDeps): Promise<CustomDomains> {
  const { store, box, logger, clock } = deps;
  const wallClock = deps.wallClock ?? systemClock;
  const relayDomain = normalizeHost(cfg.domain);
  const acme = Boolean(cfg.acmeDirectory);
  if (cfg.tlsCert || cfg.tlsKey) {
    if (!cfg.tlsCert || !cfg.tlsKey) throw new TunnError('CONFIG_INVALID', '--tls-cert and --tls-key go together: pass both');
    if (acme) throw new TunnError('CONFIG_INVALID', '--tls-cert/--tls-key and --acme-directory exclude each other: static certificate files, or certificates from an ACME CA');
  }
  if (!acme && !cfg.tlsCert && !cfg.dev) {
    throw new TunnError('CONFIG_INVALID', 'the relay needs certificates: pass --acme-directory letsencrypt (with --acme-email), or --tls-cert and --tls-key, or run with --dev for a local dev CA');
  }
  const relayCerts = cfg.relayCerts ?? 'wildcard';
  const provider = deps.dnsProvider;
  if (provider && !acme) throw new TunnError('CONFIG_INVALID', '--dns-provider writes ACME DNS-01 records: it needs --acme-directory');
  const dnsPort = cfg.dnsPort ?? (acme && relayCerts === 'wildcard' && !provider ? 53 : undefined);
  if (acme && relayCerts === 'wildcard' && cfg.dnsPort === undefined && !provider) {
    logger.info('the relay answers DNS for its zone on port 53 (DNS-01 for its wildcard certificate); pass --dns-port to change it');
  }
  const publicIps = cfg.publicIps.length ? cfg.publicIps : cfg.dev ? ['127.0.0.1'] : [];
  if (dnsPort !== undefined && publicIps.length === 0) {
    throw new TunnError('CONFIG_INVALID', `--public-ip is required with the relay's DNS server: the address(es) ${relayDomain} and *.${relayDomain} answer with`);
  }

  if (acme && cfg.acmeChallenges) {
    if (cfg.acmeChallenges.length === 0) throw new TunnError('CONFIG_INVALID', '--acme-challenge needs at least one of dns-01, http-01, tls-alpn-01');
    if (cfg.acmeChallenges.includes('dns-01') && dnsPort === undefined && !provider) throw new TunnError('CONFIG_INVALID', "--acme-challenge dns-01 needs the relay's DNS server (--dns-port and --public-ip) or a DNS provider (--dns-provider)");
    if (relayCerts === 'wildcard' && !cfg.acmeChallenges.includes('dns-01')) {
      throw new TunnError('CONFIG_INVALID', '--acme-challenge must include dns-01 with --relay-certs wildcard (a CA validates wildcards only through DNS); use --relay-certs per-host to answer only http-01/tls-alpn-01');
    }
  }

  // In a cluster the CA may connect to any relay: HTTP-01 and TLS-ALPN-01 answers come from the shared database.
  const shared = acme && cfg.sharedChallenges ? new SharedChallenges({ store, clock: wallClock, logger }) : undefined;
  const http01 = new Http01Solver(shared);
  const alpn = new TlsAlpn01Solver(shared);
  let dns: RelayDns | undefined;
  if (dnsPort !== undefined) {
    try {
      dns = await startRelayDns({ domain: relayDomain, publicIps, port: dnsPort, host: cfg.dnsListen, logger });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const hint = code === 'EADDRINUSE' ? `port ${dnsPort} is in use: pick another with --dns-port (0 = any free port)` : code === 'EACCES' ? `port ${dnsPort} needs privileges (CAP_NET_BIND_SERVICE), or pick another with --dns-port` : errorMessage(err);
      throw new TunnError('CONFIG_INVALID', `cannot listen for DNS: ${hint}`, { cause: err });
    }
  }

  const sharedTxt = dns && cfg.sharedTxt ? new SharedTxt({ zone: dns.zone, store, clock, logger }) : undefined;
  await sharedTxt?.start();
  const zoneTxt: Dns01Provider | undefined = sharedTxt ?? dns?.zone;

  let issuer: Issuer;
  let caPath: string | undefined;
  let staticRelayCtx: SecureContext | undefined;
  if (acme) {
    // acme-client (and the ACME issuer over it) is loaded only by a relay configured for ACME:
    // it is the largest part of the relay's idle memory that a relay without ACME never uses.
    const [{ AcmeIssuer }, { KyselyAcmeAccounts }] = await Promise.all([import('../certs/acme-issuer.ts'), import('../certs/kysely-acme-accounts.ts')]);
    let caPem: string | undefined;
    if (cfg.acmeCa) {
      try {
        caPem = readFileSync(cfg.acmeCa, 'utf8');
      } catch (err) {
        throw new TunnError('CONFIG_INVALID', `cannot read --acme-ca ${cfg.acmeCa}: ${errorMessage(err)}`, { cause: err });
      }
    }
    // DNS-01 records go through the operator's DNS provider when there is one, else the relay's own zone.
    const txt: Dns01Provider | undefined = provider ?? zoneTxt;
    const available: Record<ChallengeType, ChallengeSolver | undefined> = {
      'dns-01': txt && new Dns01Solver({ txt, acmeIdFor: async (d) => (await domainByName(store, d))?.acmeIdentifier }),
      'http-01': http01,
      'tls-alpn-01': alpn,
    };
    const order = cfg.acmeChallenges ?? (['dns-01', 'http-01', 'tls-alpn-01'] as ChallengeType[]);
    const solvers = order.map((t) => available[t]).filter((s): s is ChallengeSolver => s !== undefined);
    issuer = new AcmeIssuer({
      directory: cfg.acmeDirectory!,
      email: cfg.acmeEmail,
      caPem,
      // The manager has its own retry schedule: acme-client's own retries stay short.
      httpRetry: { maxAttempts: 1, defaultDelaySeconds: 1 },
      accounts: new KyselyAcmeAccounts(store, box, () => clock.now()),
      solvers,
      backoff: { attempts: 12, minMs: 500, maxMs: 10_000 },
      logger,
    });
  } else if (cfg.tlsCert) {
    try {
      staticRelayCtx = tls.createSecureContext({ cert: readFileSync(cfg.tlsCert), key: readFileSync(cfg.tlsKey!) });
    } catch (err) {
      throw new TunnError('CONFIG_INVALID', `cannot load the TLS certificate ${cfg.tlsCert} / key ${cfg.tlsKey}: ${errorMessage(err)}`, { cause: err });
    }
    // Custom domains with static files work only when the files cover them; otherwise tls_error says so.
    issuer = new FilesIssuer(cfg.tlsCert, cfg.tlsKey!);
  } else {
    // The dev CA (@peculiar/x509 and its ASN.1 stack) is loaded only by a --dev relay.
    const [{ ensureDevCa, issueLeaf }, { SelfSignedIssuer }] = await Promise.all([import('../certs/dev-ca.ts'), import('../certs/self-signed-issuer.ts')]);
    const ca = await ensureDevCa(cfg.dataDir, relayDomain);
    if (ca.replaced) logger.warn({ event: 'dev_ca_replaced', caPath: ca.certPath }, ca.replaced);
    caPath = ca.certPath;
    const leaf = await issueLeaf(ca, [relayDomain, `*.${relayDomain}`, 'localhost', '127.0.0.1', '::1']);
    staticRelayCtx = tls.createSecureContext({ cert: leaf.certPem, key: leaf.keyPem });
    issuer = new SelfSignedIssuer(ca);
  }

  const alert = createAlerter({ store, logger, webhookUrl: cfg.alertWebhook, onAlert: deps.onAlert });
  const decide = relayDecisionFunc({ relayDomain, relayCerts, customDomain: customDomainDecider(store, deps.isLiveHost), allowRelayHost: deps.isLiveHost && ((h) => h === relayDomain || deps.isLiveHost!(h)) });
  const manager = new CertManager({ ...relayCertBackends(store, box, logger), issuer, decide, clock, logger, onAlert: alert, maintainIntervalMs: cfg.maintainIntervalMs });
  let probe: CertProbe | undefined;

  const isRelayName = (sn: string) => sn === relayDomain || sn.slice(sn.indexOf('.') + 1) === relayDomain;
  const certs: EdgeCertificates = {
    contextFor(servername) {
      const sn = normalizeHost(servername ?? '');
      // No SNI (an IP address in the URL) or the relay's own names: the relay's certificate.
      if (staticRelayCtx && (!sn || isRelayName(sn))) return staticRelayCtx;
      return manager.getSecureContext(sn || relayDomain);
    },
    alpnChallengeContext: (servername) => alpn.answer(servername),
    hasAlpnChallenge: (servername) => alpn.has(servername),
    sharedAlpnChallenges: alpn.shared,
    // ACME: the relay's own certificate is obtained in the background, with retries (own-certificate.ts).
    manage: acme ? (servername) => manager.manage(servername) : undefined,
  };
  const http01Answer = (body: string | undefined): PlainResponse | undefined =>
    body === undefined ? undefined : { status: 200, headers: [['Content-Type', 'text/plain'], ['Cache-Control', 'no-store'], ['X-Content-Type-Options', 'nosniff']], body, close: true };
  const plainHook = (path: string, host: string): PlainResponse | undefined | Promise<PlainResponse | undefined> => {
    const body = http01.respond(path, host);
    return body instanceof Promise ? body.then(http01Answer) : http01Answer(body);
  };
  const resolveDomain = (account: Account, requested: string | undefined, kind?: TunnelTlsKind) => resolveTunnelDomain(store, relayDomain, { accountId: account.id, email: account.email }, requested, kind);

  return {
    manager,
    issuer,
    decide,
    dns,
    dnsPort: dns?.port,
    dnsTxt: zoneTxt,
    caPath,
    acme,
    alert,
    certs,
    plainHook,
    resolveDomain,
    api: { relayDomain, resolver: cfg.dnsResolver, strict: cfg.strictDomainVerify, manager, certEventToken: cfg.certEventToken, onAlert: alert, clock: wallClock },
    start(target) {
      manager.start();
      probe = new CertProbe({ storage: manager.storage, record: probeRecorder(store, alert), target, clock, logger, intervalMs: cfg.probeIntervalMs });
      probe.start();
      // Catch up at once: certificates due while the relay was down, domains waiting for a retry.
      void manager.maintain().catch((err) => logger.error({ err: errorMessage(err) }, 'certificate maintenance failed'));
    },
    async close() {
      manager.stop();
      probe?.stop();
      sharedTxt?.stop();
      await dns?.close();
    },
  };
}
