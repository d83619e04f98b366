import { domainByName, listDomains, normalizeCustomDomain, type Domain } from '../certs/domains.ts';
import { TunnError } from '../lib/errors.ts';
import type { Store } from '../store/store.ts';
import { normalizeHost } from '../lib/host.ts';

// Who may use a custom domain (seed 002 "Domain Sharing") and which domain a tunnel is served
// under ("Domain Resolution"). The owner and everyone the owner shared it with may create
// tunnels on it; only the owner may manage it.

export interface Caller {
  accountId: string;
  email: string;
}

/** "@company.com" or an email, normalised; INVALID_INPUT saying what a share entry looks like. */
export function normalizeShare(entry: string): string {
  const e = entry.trim().toLowerCase();
  const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;
  if (e.startsWith('@') ? DOMAIN.test(e.slice(1)) : /^[^\s@,]+@[^\s@,]+$/.test(e) && DOMAIN.test(e.split('@')[1]!)) return e;
  throw new TunnError('INVALID_INPUT', `"${entry}" is neither an email (alice@company.com) nor an email domain (@company.com)`);
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

/**
 * The domain a tunnel is served under (seed 002 "Domain Resolution"):
 * `-d` given → the relay's domain, or a verified custom domain the caller owns or was shared;
 * none given → the caller's one usable custom domain, the relay's domain when there is none,
 * an error listing them when there are several.
 */
export async function resolveTunnelDomain(store: Store, relayDomain: string, caller: Caller, requested: string | undefined): Promise<string> {
  const r = relayDomain.toLowerCase();
  if (requested) {
    const want = normalizeHost(requested);
    if (want === r) return r;
    let name: string;
    try {
      name = normalizeCustomDomain(want, r);
    } catch (err) {
      if (err instanceof TunnError && err.code === 'NAME_RESERVED') {
        throw new TunnError('NAME_INVALID', `${want} is inside the relay's domain: use -n to pick the name, e.g. -n ${want.slice(0, -r.length - 1).split('.').at(-1)} (tunnels are <name>.${r})`);
      }
      throw err;
    }
    const d = await domainByName(store, name);
    const role = d && roleOf(d, caller);
    if (!d || !role) {
      throw new TunnError('NOT_FOUND', `${name} is not a custom domain you can use on this relay: register it with \`tunn domain add ${name}\`, or ask its owner to \`tunn domain share ${name} ${caller.email}\``);
    }
    if (!d.verifiedAt) {
      throw new TunnError('FORBIDDEN', `${name} is not verified yet: create its DNS records and run \`tunn domain verify ${name}\``);
    }
    if (d.tlsMode !== 'terminate') throw new TunnError('FORBIDDEN', `${name} is a passthrough domain; tunnels on it are not served with the relay's certificates`);
    return d.domain;
  }
  const usable = (await domainsVisibleTo(store, caller)).filter((x) => x.domain.verifiedAt && x.domain.tlsMode === 'terminate').map((x) => x.domain.domain);
  if (usable.length === 0) return r;
  if (usable.length === 1) return usable[0]!;
  throw new TunnError('INVALID_INPUT', `you can use several custom domains (${usable.join(', ')}): choose one with -d, e.g. -d ${usable[0]} (or -d ${r} for the relay's own)`);
}

/**
 * Why a live tunnel on `domain` may no longer be served there — the custom domain was deleted,
 * is no longer shared with the tunnel's account, is unverified or became passthrough — as a
 * sentence for its agent saying what to do; undefined while it may (and for the relay's own
 * domain). The same rules as resolveTunnelDomain, re-applied to tunnels already up.
 */
export async function lostDomainReason(store: Store, relayDomain: string, tunnel: { domain: string; accountId: string; email: string }): Promise<string | undefined> {
  const name = tunnel.domain.toLowerCase();
  if (name === relayDomain.toLowerCase()) return undefined;
  const d = await domainByName(store, name);
  if (!d) return `the custom domain ${name} was deleted from this relay, so its tunnels are offline: start the tunnel on another domain (-d), or register ${name} again with \`tunn domain add ${name}\``;
  if (!roleOf(d, tunnel)) return `the custom domain ${name} is no longer shared with ${tunnel.email}, so its tunnels are offline: ask its owner to \`tunn domain share ${name} ${tunnel.email}\`, or use another domain (-d)`;
  if (!d.verifiedAt) return `the custom domain ${name} is no longer verified, so its tunnels are offline: its owner must fix its DNS records and run \`tunn domain verify ${name}\``;
  if (d.tlsMode !== 'terminate') return `the custom domain ${name} is now a passthrough domain, so the relay no longer serves tunnels on it with its certificates`;
  return undefined;
}
