import { TunnError } from '../lib/errors.ts';
import type { Store } from '../store/store.ts';
import { normalizeShare } from './names.ts';
import { updateDomainShares, type Domain } from './records.ts';

// `tunn domain share|unshare` (seed 002 "Domain Sharing"): the owner lets emails or whole email
// domains create tunnels on a custom domain. Unsharing takes effect on live tunnels through
// the relay's revocation sweep (resolution.ts lostDomainReason).

/** The share entries of `who` ("@company.com" or emails, also comma-separated), normalised; INVALID_INPUT naming the first bad one. */
export function shareEntries(d: Pick<Domain, 'domain'>, who: string[]): string[] {
  const entries = who.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  if (entries.length === 0) throw new TunnError('INVALID_INPUT', `name who to share with: tunn domain share ${d.domain} @company.com or alice@company.com,bob@company.com`);
  return entries.map(normalizeShare);
}

/** Adds `who` to `d`'s shares; the new list. */
export async function shareDomain(store: Store, d: Pick<Domain, 'domain'>, who: string[]): Promise<string[]> {
  const normalized = shareEntries(d, who);
  return updateDomainShares(store, d.domain, (current) => [...current, ...normalized]);
}

/** Removes one share entry; NOT_FOUND saying who it is shared with when `who` is not among them. */
export async function unshareDomain(store: Store, d: Pick<Domain, 'domain' | 'shares'>, who: string): Promise<string[]> {
  const entry = normalizeShare(who);
  if (!d.shares.includes(entry)) {
    throw new TunnError('NOT_FOUND', `${d.domain} is not shared with ${entry}${d.shares.length ? ` (shared with: ${d.shares.join(', ')})` : ' (it is not shared with anyone)'}`);
  }
  return updateDomainShares(store, d.domain, (current) => current.filter((s) => s !== entry));
}
