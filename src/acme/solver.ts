// Challenge solvers behind one interface. The ACME issuer hands each authorization to the
// solver for the challenge type it picked; the relay wires each solver to its listener:
// dns-01 → the relay's DNS zone (or another Dns01Provider), http-01 → the plain-HTTP
// listener, tls-alpn-01 → the TLS edge when a ClientHello offers ALPN `acme-tls/1`.

export type ChallengeType = 'dns-01' | 'http-01' | 'tls-alpn-01';

/** The parts of an ACME authorization a solver needs (acme-client's Authorization fits). */
export interface AuthzInfo {
  identifier: { type: string; value: string };
  /** True for the authorization of a `*.name` identifier (RFC 8555 7.1.4); value is then `name`. */
  wildcard?: boolean;
}

export interface ChallengeInfo {
  type: string;
  token: string;
  url?: string;
}

/**
 * A challenge solver. Contract:
 * - present() makes the challenge answerable and resolves once it is; cleanup() undoes it.
 * - `keyAuthorization` is as acme-client computes it: for dns-01 already the base64url SHA-256
 *   digest (the TXT value); for http-01 and tls-alpn-01 `token.thumbprint`.
 * - Implementations MUST be safe for concurrent use: one order presents several
 *   authorizations at once, and a wildcard and its apex share one DNS name.
 * - cleanup() MUST remove only what the matching present() added.
 */
export interface ChallengeSolver {
  readonly type: ChallengeType;
  present(authz: AuthzInfo, challenge: ChallengeInfo, keyAuthorization: string): Promise<void>;
  cleanup(authz: AuthzInfo, challenge: ChallengeInfo, keyAuthorization: string): Promise<void>;
}
