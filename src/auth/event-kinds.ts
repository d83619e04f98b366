// The kinds of security event (src/auth/events.ts). Pure: the web console's filter lists them.

export type SecurityEventKind =
  | 'login_failed'
  | 'token_invalid'
  | 'token_revoked_used'
  | 'visitor_denied'
  | 'rate_limited'
  | 'ip_denied'
  | 'basic_auth_failed'
  /** A certificate failed to issue or renew, is expiring, or drifted (ops alert for the domain owner). */
  | 'cert_alert'
  /** The identity provider no longer puts a user in a group the relay had seen them in (src/auth/idp-groups.ts). */
  | 'idp_group_removed'
  /** A live `tunn connect` stream was cut: its user's credential was revoked or they left the allow-list. */
  | 'connection_cut'
  /** Reported by an agent whose TLS ends at it (issue 12): a request's Host named another server than its TLS handshake (421). */
  | 'host_mismatch'
  /** Reported by an agent whose TLS ends at it: a visitor's client certificate was missing or refused (--client-ca). */
  | 'client_cert_refused';

export const EVENT_KINDS: readonly SecurityEventKind[] = ['login_failed', 'token_invalid', 'token_revoked_used', 'visitor_denied', 'rate_limited', 'ip_denied', 'basic_auth_failed', 'cert_alert', 'idp_group_removed', 'connection_cut', 'host_mismatch', 'client_cert_refused'];

/**
 * How an event an agent reported (TLS ends there, so the relay saw nothing) begins its detail: its
 * address and email are the agent's word, never observed by the relay. `tunn events` marks them.
 */
export const AGENT_REPORTED_DETAIL = 'reported by the agent (TLS ends there; address and email as the agent says, unverified): ';

export function isAgentReported(detail: string | null | undefined): boolean {
  return typeof detail === 'string' && detail.startsWith(AGENT_REPORTED_DETAIL);
}
