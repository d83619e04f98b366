import type { DomainApiOptions } from '../api/domains.ts';
import type { GroupDirectory } from '../auth/idp-groups.ts';
import type { LoginProviderConfig } from '../auth/oidc.ts';
import type { TokenService } from '../auth/tokens.ts';
import type { Dns01Provider } from '../dns/dns01-provider.ts';
import type { Clock } from '../lib/clock.ts';
import type { Logger } from '../lib/logger.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { Account } from '../store/accounts.ts';
import type { AcmeAdvert } from '../protocol/messages.ts';
import type { Store } from '../store/store.ts';
import type { PortRange } from '../lib/port-range.ts';
import type { RelayClusterConfig } from './cluster-wiring.ts';
import type { OwnCertificateState } from './own-certificate.ts';
import type { OwnHostMount } from './own-host.ts';
import type { LocalResponse } from './pages.ts';
import type { CertSource } from './tls-servers.ts';

// What a relay is made with (relay.ts wires it): its configuration, what it is started with,
// and what it says about itself once it listens.

export interface RelayConfig {
  domain: string;
  /** 0 = pick a free port. */
  httpsPort: number;
  httpPort: number;
  /** Address to listen on. */
  listen: string;
  dataDir: string;
  dev: boolean;
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
  /** How long into a database outage identity decisions come from cache before 503 (auth/outage-cache.ts); default 30 s. Tests only (TUNN_TEST_IDENTITY_OUTAGE_MS). */
  identityOutageWindowMs?: number;
  /** One relay of a cluster on a shared PostgreSQL store (cluster-wiring.ts); absent: a single relay. */
  cluster?: RelayClusterConfig;
  /** Tunnels beyond HTTP (tcp, udp, tls; issue 11): public port ranges and their limits. */
  kinds?: KindsConfig;
}

/** Public ports and limits of tcp/udp/tls tunnels; every field has a default (none: no public ports). */
export interface KindsConfig {
  tcpPorts?: PortRange;
  udpPorts?: PortRange;
  /** Public ports one account may hold, TCP and UDP together (default 5). */
  portQuota?: number;
  /** Open connections on one public TCP port at once (default 1000). */
  portConnections?: number;
  /** Open connections from one client IP on one public TCP port (default 100). */
  portConnectionsPerIp?: number;
  /** UDP flows on one public UDP port (default 1000) and across the relay (default 10000). */
  udpFlows?: number;
  udpFlowsTotal?: number;
  /** A UDP flow silent both ways this long ends (default 60 s). */
  udpFlowIdleMs?: number;
  /** A raw TCP connection silent both ways this long is closed (default an hour). */
  tcpIdleMs?: number;
  /** Ports the relay listens on besides HTTPS and HTTP (its DNS server): never handed out. */
  reserved?: number[];
}

export interface RelayDeps {
  logger: Logger;
  clock: Clock;
}

/** What the relay is started with: certificates, and the parts custom domains plug in. */
export interface RelayExtensions {
  certs: CertSource;
  /** The dev CA's certificate, shown to users (agents trust it with --relay-ca). */
  caPath?: string;
  /** Picks the domain a tunnel is served under; default: the relay's domain only. */
  resolveDomain?: (account: Account, requested: string | undefined, kind?: { kind?: string; backend?: string; tlsEnds?: 'relay' | 'agent' }) => Promise<string>;
  /** Custom domains and certificates for /v1/domains and /v1/certs. */
  domainApi?: DomainApiOptions;
  /** Plain-HTTP requests answered before the redirect to HTTPS (ACME HTTP-01). */
  plainHook?: (path: string, host: string) => LocalResponse | undefined | Promise<LocalResponse | undefined>;
  /** Apps served under a path of the relay's own host (the console's files). */
  mounts?: OwnHostMount[];
  /** TLS that ends at agents: the relay's DNS-01 for its zone (names agents hold only), the weekly budget per account, the ACME CA advertised in welcome. */
  agentTls?: { dns01?: Dns01Provider; dns01PerWeek?: number; acme?: AcmeAdvert };
}

/** The relay's store and keys, for the parts started beside it (custom domains, `tunn dev`). */
export interface RelayParts {
  store: Store;
  box: SecretBox;
  tokens: TokenService;
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

