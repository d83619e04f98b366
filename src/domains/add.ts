import { recordCertEvent } from '../certs/events.ts';
import { requiredRecords, verifyDomainDns } from '../dns/verify.ts';
import { TunnError } from '../lib/errors.ts';
import type { Account } from '../store/accounts.ts';
import type { Store } from '../store/store.ts';
import { createDomain, deleteDomain, domainByName, type Domain } from './records.ts';

// `tunn domain add`: registers a domain for the caller's account. A verified domain belongs to
// its account; an unverified claim does not lock a domain away from whoever can prove control
// of its DNS (the claim is replaced once the newcomer's records check out).

export interface AddDomainOptions {
  relayDomain: string;
  resolver?: string;
  now: number;
  /** `--terminate-at agent`: no relay wildcard for the domain (issue 12). */
  tlsMode?: 'agent';
  allowRelayFallback?: boolean;
}

/**
 * Whether `account` may add `name` (already normalised): CONFLICT when another account holds it
 * verified, or holds an unverified claim and `account`'s own records are not in DNS yet. The
 * existing row, if any (another account's claim is replaced by addDomain). Changes nothing: the
 * console asks it as the user types (POST /v1/domains/validate).
 */
export async function checkAddable(store: Store, account: Pick<Account, 'id' | 'acme_id'>, name: string, opts: Omit<AddDomainOptions, 'now'>): Promise<Domain | undefined> {
  const existing = await domainByName(store, name);
  if (existing && existing.accountId !== account.id) {
    if (existing.verifiedAt) throw new TunnError('CONFLICT', `${name} is already registered to another account; if it is yours, ask that account to delete it (tunn domain delete ${name})`);
    const mine = requiredRecords({ domain: name, acmeId: account.acme_id, relayDomain: opts.relayDomain });
    const check = await verifyDomainDns({ domain: name, acmeId: account.acme_id, relayDomain: opts.relayDomain, resolver: opts.resolver });
    if (!check.ok) {
      throw new TunnError('CONFLICT', `${name} is waiting for DNS verification by another account. If you control its DNS, create ${mine.map((r) => `${r.name} ${r.type} ${r.value}`).join(' and ')}, then run \`tunn domain add ${name}\` again`);
    }
  }
  return existing ?? undefined;
}

/** The domain row for `name` (already normalised) owned by `account`, and whether it is new to that account. */
export async function addDomain(store: Store, account: Pick<Account, 'id' | 'email' | 'acme_id'>, name: string, opts: AddDomainOptions): Promise<{ domain: Domain; created: boolean }> {
  const existing = await checkAddable(store, account, name, opts);
  if (existing && existing.accountId !== account.id) {
    await deleteDomain(store, name);
    await recordCertEvent(store, { domain: name, kind: 'external', message: `unverified claim by another account replaced: ${account.email} proved control of the DNS records` }, opts.now);
  }
  const created = !existing || existing.accountId !== account.id;
  const domain = await createDomain(store, { accountId: account.id, acmeId: account.acme_id, domain: name, relayDomain: opts.relayDomain, tlsMode: opts.tlsMode, allowRelayFallback: opts.allowRelayFallback }, opts.now);
  return { domain, created };
}
