import type { Store } from '../store/store.ts';
import { listDomains, type Domain } from './records.ts';

// Who may use a custom domain (seed 002 "Domain Sharing"). The owner and everyone the owner
// shared it with may create tunnels on it; only the owner may manage it.

export interface Caller {
  accountId: string;
  email: string;
}

/** Whether `email` is covered by one of the domain's shares. */
export function sharedWith(d: Pick<Domain, 'shares'>, email: string): boolean {
  const e = email.toLowerCase();
  return d.shares.some((s) => (s.startsWith('@') ? e.endsWith(s) : s === e));
}

export type DomainRole = 'owner' | 'shared';

export function roleOf(d: Domain, caller: Caller): DomainRole | undefined {
  if (d.accountId === caller.accountId) return 'owner';
  return sharedWith(d, caller.email) ? 'shared' : undefined;
}

/** Every domain the caller owns or was shared with (verified or not), by name. */
export async function domainsVisibleTo(store: Store, caller: Caller): Promise<{ domain: Domain; role: DomainRole }[]> {
  const out: { domain: Domain; role: DomainRole }[] = [];
  for (const d of await listDomains(store)) {
    const role = roleOf(d, caller);
    if (role) out.push({ domain: d, role });
  }
  return out;
}
