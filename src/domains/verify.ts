import { recordCertEvent } from '../certs/events.ts';
import type { CertManager } from '../certs/manager.ts';
import { verificationProblems, verifyDomainDns, type DomainVerification, type RecordCheck } from '../dns/verify.ts';
import { TunnError } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { Store } from '../store/store.ts';
import { customDomainDecision } from './cert-lifecycle.ts';
import { domainByName, markDomainVerified, updateDomainTls, type Domain } from './records.ts';

// `tunn domain add` (after createDomain) and `tunn domain verify`: check the customer's DNS
// and, when every record is right, mark the domain verified so on-demand issuance may start.

export interface VerifyDomainOptions {
  relayDomain: string;
  /** `--dns-resolver host:port`; the system's resolver when omitted. */
  resolver?: string;
  /** `--strict-domain-verify`: also require the `_tunn-verify` TXT token. */
  strict?: boolean;
  now?: number;
}

export async function verifyDomain(store: Store, domain: string, opts: VerifyDomainOptions): Promise<DomainVerification & { verifiedAt: string | null }> {
  const row = await domainByName(store, domain);
  if (!row) throw new TunnError('NOT_FOUND', `${domain} is not registered; add it with: tunn domain add ${domain}`);
  const v = await verifyDomainDns({
    domain: row.domain,
    acmeId: row.acmeIdentifier,
    relayDomain: opts.relayDomain,
    strict: opts.strict,
    verificationToken: row.verificationToken,
    resolver: opts.resolver,
  });
  if (!v.ok) return { ...v, verifiedAt: row.verifiedAt };
  const now = opts.now ?? Date.now();
  if (!row.verifiedAt) {
    await markDomainVerified(store, row.domain, now);
    await recordCertEvent(store, { domain: row.domain, kind: 'verified', message: `DNS records verified${opts.strict ? ' (strict, with TXT token)' : ''}` }, now);
  }
  // A fresh verification is also the user's way to ask for an immediate certificate retry.
  if (row.certFailureCount > 0) await updateDomainTls(store, row.domain, { cert_failure_count: 0, cert_next_retry_at: null });
  return { ...v, verifiedAt: row.verifiedAt ?? nowIso(now) };
}

export interface VerifyResult {
  domain: string;
  verified: boolean;
  verifiedAt: string | null;
  records: RecordCheck[];
  /** One sentence per record that is not right yet. */
  problems: string[];
}

/**
 * Verifies `d` and acts on the answer: verified → the certificate is retried now and issued in
 * the background (so the first visitor does not wait for the CA); a verified domain whose
 * records changed → pending_route, saying which records are wrong.
 */
export async function verifyAndCertify(store: Store, d: Domain, opts: VerifyDomainOptions & { now: number; manager?: CertManager }): Promise<VerifyResult> {
  const v = await verifyDomain(store, d.domain, opts);
  const problems = verificationProblems(v);
  if (v.ok) {
    const fresh = (await domainByName(store, d.domain))!;
    if (fresh.tlsStatus === 'pending_route') await updateDomainTls(store, d.domain, { tls_status: fresh.certificateRef ? 'issued' : 'pending_issue', tls_last_error: null });
    if (!fresh.certificateRef || fresh.certFailureCount > 0 || d.certFailureCount > 0) {
      await opts.manager?.retryNow(d.domain);
      prefetchCertificate(fresh, opts.manager);
    }
  } else if (d.verifiedAt) {
    // A verified domain whose records changed: traffic or renewals may no longer reach the relay.
    const message = `DNS records changed: ${problems.join('; ')}`;
    await updateDomainTls(store, d.domain, { tls_status: 'pending_route', tls_last_error: message, tls_last_checked_at: nowIso(opts.now) });
    await recordCertEvent(store, { domain: d.domain, kind: 'probe_error', message }, opts.now);
  }
  return { domain: d.domain, verified: v.ok, verifiedAt: v.verifiedAt, records: v.records, problems };
}

/** Starts issuing the wildcard in the background; a failure is recorded (tls_error with a retry), not thrown. */
export function prefetchCertificate(d: Domain, manager: CertManager | undefined): void {
  if (!manager || d.tlsMode !== 'terminate') return;
  manager.obtain(customDomainDecision(d.domain)).catch(() => {});
}
