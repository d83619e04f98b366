// The database schema as Kysely sees it. Timestamps are ISO-8601 UTC strings in both
// SQLite and PostgreSQL (they sort as text), booleans are 0/1 integers, lists are JSON text.
// Each concern owns its tables; migrations.ts creates them.

export interface AccountsTable {
  id: string;
  email: string;
  /** Short unique id used in `<acme_id>._acme.<relay domain>` (custom domains). */
  acme_id: string;
  created_at: string;
}

/** Tunnel names: a name belongs to the account that first used it (per domain). */
export interface NamesTable {
  domain: string;
  name: string;
  account_id: string;
  created_at: string;
  last_used_at: string;
}

/** Every token the relay issues (agent, personal access, session, refresh) has a row keyed by its jti. */
export interface TokensTable {
  jti: string;
  account_id: string;
  kind: string;
  label: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

/** JWT signing keys; the private half sealed with the relay's secret key. */
export interface SigningKeysTable {
  kid: string;
  alg: string;
  private_sealed: string;
  public_jwk: string;
  created_at: string;
  retired_at: string | null;
}

// --- identity (src/auth) ---

/** Groups lite: a saved list of emails, owned by one account (seed 002). */
export interface GroupsTable {
  id: string;
  account_id: string;
  name: string;
  /** JSON array of normalised emails. */
  emails: string;
  created_at: string;
  updated_at: string;
}

/**
 * Browser sessions. The cookie holds a random secret; only its SHA-256 is stored (`id`).
 * A relay session has `parent_id` null; a tunnel-host session points at the relay session it
 * was handed off from, so logging out revokes the family.
 */
export interface SessionsTable {
  id: string;
  parent_id: string | null;
  account_id: string;
  email: string;
  /** The host (lower-case, with port if any) the cookie was issued for. */
  host: string;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
  ip: string;
  user_agent: string;
}

/** RFC 8628 device authorisation (`tunn login`). `id` = SHA-256 of the device_code. */
export interface DeviceCodesTable {
  id: string;
  user_code: string;
  client_name: string;
  ip: string;
  /** pending | approved | denied | consumed */
  status: string;
  account_id: string | null;
  email: string | null;
  interval_s: number;
  created_at: string;
  expires_at: string;
  last_poll_at: string | null;
}

/**
 * One-time codes: host-bound hand-off codes, magic-link nonces, OIDC login state.
 * `id` = SHA-256 of the code; `data` is JSON (sealed where it holds secrets).
 */
export interface LoginCodesTable {
  id: string;
  /** handoff | magic | oidc */
  purpose: string;
  host: string;
  account_id: string | null;
  email: string | null;
  session_id: string | null;
  data: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
}

/** Security events: failed logins, revoked-token use, denied visitors, rate-limit bursts. */
export interface SecurityEventsTable {
  id: string;
  at: string;
  kind: string;
  ip: string | null;
  email: string | null;
  tunnel: string | null;
  /** The account the event concerns (tunnel owner, token owner), for per-account listing. */
  account_id: string | null;
  detail: string;
  /** How many occurrences this row stands for (bursts are recorded once per window). */
  count: number;
}

// --- certificates and custom domains (src/certs, src/acme, src/dns) ---

/** Lifecycle of a domain's certificate (seed 001). */
export type TlsStatus = 'pending_issue' | 'pending_route' | 'issued' | 'expiring' | 'tls_error' | 'passthrough_unverified';

/** Custom domains (seed 002) with certificate lifecycle columns (seed 001). */
export interface DomainsTable {
  id: string;
  account_id: string;
  /** "tunn.mycompany.com": the customer's `*.` CNAME points there. Unique. */
  domain: string;
  /** The owner's account acme_id at registration (`<acme_identifier>._acme.<relay>`). */
  acme_identifier: string;
  /** JSON array of "@company.com" / emails the owner shared the domain with. */
  shares: string;
  /** Token for strict verification (`_tunn-verify.<domain>` TXT). */
  verification_token: string;
  verified_at: string | null;
  /** terminate | passthrough | agent | agent+relay-fallback (issue 12: TLS ends at agents, no relay wildcard) */
  tls_mode: string;
  tls_status: TlsStatus;
  tls_not_after: string | null;
  tls_last_error: string | null;
  tls_last_checked_at: string | null;
  /** certificates.id of the certificate serving the domain. */
  certificate_ref: string | null;
  /** backoff (retry on the seed's schedule) | manual (no automatic retry after a failure) */
  cert_failure_policy: string;
  cert_failure_count: number;
  cert_next_retry_at: string | null;
  created_at: string;
  /**
   * Signing time (Unix seconds) of the last cert event applied to the domain; a signed event at
   * or before it is refused (replay, out of order), on every relay sharing the database.
   * bigint: PostgreSQL returns it as a string, SQLite as a number.
   */
  cert_event_at: string | number | null;
}

/** The current certificate per name (`*.tunn.mycompany.com`); the private key sealed. */
export interface CertificatesTable {
  id: string;
  /** The certificate's key name: its first SAN (a wildcard for custom domains). Unique. */
  name: string;
  /** JSON array of all SANs. */
  names: string;
  /** Issuer id, e.g. "acme:https://acme-v02.api.letsencrypt.org/directory", "files", "self-signed". */
  issuer: string;
  /** Leaf first, then intermediates. */
  chain_pem: string;
  /** SecretBox-sealed PKCS#8 PEM, bound to the row name. */
  key_sealed: string;
  not_before: string;
  not_after: string;
  /** ACME Renewal Information (RFC 9773) suggested window, when the CA offers it. */
  ari_window_start: string | null;
  ari_window_end: string | null;
  ari_checked_at: string | null;
  created_at: string;
}

/** Certificate and domain lifecycle events, per domain (or certificate name). */
export interface CertEventsTable {
  id: string;
  at: string;
  /** The domain (or certificate name when no domain row applies). */
  domain: string;
  /** issued | renewed | failed | retry_scheduled | expiring | probe_drift | probe_error | external | verified | alert */
  kind: string;
  message: string;
  /** JSON object. */
  detail: string;
}

/** ACME accounts, one per directory URL; the account key sealed. */
export interface AcmeAccountsTable {
  directory_url: string;
  email: string | null;
  key_sealed: string;
  account_url: string | null;
  created_at: string;
}

/** IdP groups from an OIDC sign-in, per relay session family (src/auth/idp-groups.ts). */
export interface IdpSessionGroupsTable {
  /** The root (relay) session id. */
  session_id: string;
  /** The login provider id. */
  source: string;
  /** JSON array of group names. */
  groups: string;
  refreshed_at: string;
  /** JSON { refreshToken?, accessToken? } sealed with the relay's key (context: the session id); null when the provider gave neither. */
  secrets_sealed: string | null;
}

/** Access that expires (src/auth/grants.ts). */
export interface GrantsTable {
  id: string;
  /** The tunnel owner. */
  account_id: string;
  host: string;
  /** The agent registration a `--for` grant came with; '' for `tunn grant add`. */
  ref: string;
  /** One allow-list entry (email, @domain, group:name, idp:name). */
  entry: string;
  created_at: string;
  expires_at: string;
}

/** Public TCP/UDP ports on the relay (src/relay/public-ports.ts): one per (protocol, tunnel name). */
export interface PublicPortsTable {
  protocol: 'tcp' | 'udp';
  port: number;
  /** The tunnel's domain and name, normalised (lib/host.ts). */
  domain: string;
  name: string;
  account_id: string;
  created_at: string;
  last_used_at: string;
}

// --- cluster (src/cluster) ---

/** One running relay process of a cluster. A restarted relay is a new row (a new id). */
export interface ClusterNodesTable {
  /** Random per process start. */
  id: string;
  /** Where other relays reach its inter-relay link (`--node-url`), e.g. https://10.0.0.11:7443. */
  url: string;
  started_at: string;
  /** Heartbeat; alive = seen within the lease TTL. */
  last_seen_at: string;
  /** Agent sessions and tunnels it held at its last heartbeat. */
  agents: number;
  tunnels: number;
  /** tunn's version, so a mixed-version cluster shows in `tunn relay status`. */
  version: string;
}

/** Tunnel location: a row per (host, node, agent session), kept alive by the holding node. */
export interface TunnelLeasesTable {
  /** `name.domain`, normalised (src/lib/host.ts). */
  host: string;
  node_id: string;
  session_id: string;
  /** Agent-side tunnel id. */
  tunnel_id: string;
  name: string;
  account_id: string;
  agent_id: string;
  /** http | tcp | udp | tls */
  kind: string;
  /** The public port a tcp/udp tunnel holds; null for http. */
  port: number | null;
  since: string;
  expires_at: string;
}

/** A value sealed with the cluster's sealing key: a relay that cannot open it has another key. */
export interface SealCanaryTable {
  id: string;
  sealed: string;
  created_at: string;
}

/** An ACME DNS-01 TXT value of the relay's zone, answered by every relay's DNS server. */
export interface AcmeTxtTable {
  name: string;
  value: string;
  created_at: string;
}

/** An ACME HTTP-01 / TLS-ALPN-01 challenge a relay of a cluster presents, answered by every relay. */
export interface AcmeChallengesTable {
  type: 'http-01' | 'tls-alpn-01';
  /** The identifier (host name) the challenge is for. */
  name: string;
  token: string;
  key_authorization: string;
  created_at: string;
  expires_at: string;
}

export interface Database {
  acme_challenges: AcmeChallengesTable;
  acme_txt: AcmeTxtTable;
  accounts: AccountsTable;
  names: NamesTable;
  tokens: TokensTable;
  signing_keys: SigningKeysTable;
  groups: GroupsTable;
  sessions: SessionsTable;
  device_codes: DeviceCodesTable;
  login_codes: LoginCodesTable;
  security_events: SecurityEventsTable;
  domains: DomainsTable;
  certificates: CertificatesTable;
  cert_events: CertEventsTable;
  acme_accounts: AcmeAccountsTable;
  idp_session_groups: IdpSessionGroupsTable;
  grants: GrantsTable;
  public_ports: PublicPortsTable;
  cluster_nodes: ClusterNodesTable;
  tunnel_leases: TunnelLeasesTable;
  seal_canary: SealCanaryTable;
}
