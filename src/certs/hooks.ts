import type { CertDecision } from './decision.ts';
import type { CertFailurePolicy } from './retry.ts';
import type { CertificateSummary } from './storage.ts';

// The manager keeps certificates; others keep track of what a certificate is for (a custom
// domain's lifecycle columns, the event log). They learn of every change through
// onStateChange (certmagic's OnEvent) and answer the few questions the manager has about a
// certificate's subject; the manager itself writes nothing but certificates.

/** Lifecycle state of a certificate's subject, as `tunn domain show` and `tunn cert list` say it. */
export type CertStatus = 'pending_issue' | 'pending_route' | 'issued' | 'expiring' | 'tls_error' | 'passthrough_unverified';

export type ObtainReason = 'on-demand' | 'renewal' | 'retry';

/** Consecutive failures of a certificate and when the next attempt may start. */
export interface RetryState {
  failures: number;
  /** ms since epoch; null: only when asked (manual policy). */
  nextAt: number | null;
  policy: CertFailurePolicy;
  lastError: string | null;
}

/** One change in a certificate's life; `at` is the manager's clock. */
export type CertStateChange =
  /** An order is about to start for a name with no certificate served yet. */
  | { kind: 'obtaining'; decision: CertDecision; reason: ObtainReason; at: number }
  | { kind: 'issued'; decision: CertDecision; reason: ObtainReason; renewed: boolean; cert: CertificateSummary; at: number }
  | { kind: 'failed'; decision: CertDecision; error: string; failures: number; nextRetryAt: number | null; stillServing: CertificateSummary | undefined; at: number }
  /** A served certificate is close to expiry and not renewed; firstNotice once per certificate. */
  | { kind: 'expiring'; decision: CertDecision; cert: CertificateSummary; firstNotice: boolean; at: number }
  /** A person asked for an immediate retry (`tunn domain verify`): back-off cleared. */
  | { kind: 'retry_reset'; subject: string; at: number };

/** How a subject shows a certificate in `tunn cert list`. */
export interface CertSubjectView {
  /** The custom domain the certificate serves. */
  subject: string;
  status: CertStatus;
  lastError: string | null;
  nextRetryAt: string | null;
}

/**
 * A party that tracks certificates' subjects. Every member is optional. Contract:
 * - onStateChange is awaited, in the order changes happen; an error it throws is logged by
 *   the manager and changes nothing about the certificate (it is served all the same).
 * - The queries answer undefined for a certificate that is not theirs; the manager then asks
 *   the next party, and finally uses its own (in-memory) state.
 * - retryState: the persisted back-off of `d`'s subject (it survives a restart).
 * - forStored: what to renew a stored certificate as; null when its subject is gone or no
 *   longer wants it (then it is no longer renewed).
 * - waiting: subjects that want a certificate and have none yet (maintenance retries them).
 * - Implementations MUST be safe for concurrent use.
 */
export interface CertLifecycle {
  onStateChange?(change: CertStateChange): Promise<void> | void;
  retryState?(d: CertDecision): Promise<RetryState | undefined>;
  forStored?(name: string, names: string[]): Promise<CertDecision | null | undefined>;
  waiting?(): Promise<CertDecision[]>;
  describe?(name: string): Promise<CertSubjectView | undefined>;
}

/** The first answer a party gives to a query, in order. */
export async function firstAnswer<T>(parties: readonly CertLifecycle[], ask: (p: CertLifecycle) => Promise<T | undefined> | undefined): Promise<T | undefined> {
  for (const p of parties) {
    const r = await ask(p);
    if (r !== undefined) return r;
  }
  return undefined;
}
