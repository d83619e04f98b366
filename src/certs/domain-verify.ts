import { verifyDomainDns, type DomainVerification } from '../dns/verify.ts';
import { TunnError } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { Store } from '../store/store.ts';
import { domainByName, markDomainVerified, updateDomainTls } from './domains.ts';
import { recordCertEvent } from './events.ts';

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
