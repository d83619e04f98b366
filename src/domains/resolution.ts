import { TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import type { Store } from '../store/store.ts';
import { domainsVisibleTo, roleOf, type Caller } from './access.ts';
import { normalizeCustomDomain } from './names.ts';
import { domainByName } from './records.ts';

// Which domain a tunnel is served under (seed 002 "Domain Resolution"), when it starts and
// while it stays up.
//
// A tunnel's kind decides whether the relay terminates TLS for its name (http tunnels and
// `tunn tls --backend tcp` need the relay's certificate; `tunn tls` raw passthrough and tcp/udp
// tunnels do not). What stays per domain is `tls_mode`: on a passthrough domain the relay never
// obtains certificates (its owner manages them upstream, or does not want a CA asked for names
// under it), so only tunnels that need no relay certificate are served there.

/** What a tunnel's kind says about TLS at its name (TunnelOptions' kind and backend). */
export interface TunnelTlsKind {
  kind?: string;
  backend?: string;
  /** Where the tunnel's TLS ends (issue 12); absent: relay. */
  tlsEnds?: 'relay' | 'agent';
}

/** Whether the relay terminates TLS for a tunnel of this kind (and so needs a certificate for its name). */
export function relayTerminatesTls(k: TunnelTlsKind | undefined): boolean {
  const kind = k?.kind ?? 'http';
  return kind === 'http' || (kind === 'tls' && k?.backend === 'tcp');
}

/**
 * The domain a tunnel is served under (seed 002 "Domain Resolution"):
 * `-d` given → the relay's domain, or a verified custom domain the caller owns or was shared;
 * none given → the caller's one usable custom domain, the relay's domain when there is none,
 * an error listing them when there are several.
 */
export async function resolveTunnelDomain(store: Store, relayDomain: string, caller: Caller, requested: string | undefined, kind?: TunnelTlsKind): Promise<string> {
  const needsCert = relayTerminatesTls(kind);
  const tlsEnds = kind?.tlsEnds ?? 'relay';
  // A domain without relay certificates (passthrough, or added with --terminate-at agent) serves
  // the kinds that need none; an agent domain also serves tunnels whose TLS ends at the agent.
  const serves = (mode: string): boolean => mode === 'terminate' || !needsCert || (mode === 'agent' && tlsEnds === 'agent');
  const r = normalizeHost(relayDomain);
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
    if (d.tlsMode === 'passthrough' && !serves(d.tlsMode)) throw new TunnError('FORBIDDEN', `${name} is a passthrough domain: the relay holds no certificates there, so it serves only tunnels whose TLS ends at your service (\`tunn tls\`), and tcp/udp tunnels`);
    // A domain added with --terminate-at agent has no relay certificate: only agent-terminated tunnels (and kinds that need no certificate) serve it.
    if (d.tlsMode === 'agent' && !serves(d.tlsMode)) throw new TunnError('INVALID_INPUT', `${name} was added with --terminate-at agent (the relay holds no certificate for it): start the tunnel with --terminate-at agent`);
    return d.domain;
  }
  const usable = (await domainsVisibleTo(store, caller)).filter((x) => x.domain.verifiedAt && serves(x.domain.tlsMode)).map((x) => x.domain.domain);
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
export async function lostDomainReason(store: Store, relayDomain: string, tunnel: { domain: string; accountId: string; email: string; options?: TunnelTlsKind }): Promise<string | undefined> {
  const name = normalizeHost(tunnel.domain);
  if (name === normalizeHost(relayDomain)) return undefined;
  const d = await domainByName(store, name);
  if (!d) return `the custom domain ${name} was deleted from this relay, so its tunnels are offline: start the tunnel on another domain (-d), or register ${name} again with \`tunn domain add ${name}\``;
  if (!roleOf(d, tunnel)) return `the custom domain ${name} is no longer shared with ${tunnel.email}, so its tunnels are offline: ask its owner to \`tunn domain share ${name} ${tunnel.email}\`, or use another domain (-d)`;
  if (!d.verifiedAt) return `the custom domain ${name} is no longer verified, so its tunnels are offline: its owner must fix its DNS records and run \`tunn domain verify ${name}\``;
  if (d.tlsMode === 'passthrough' && relayTerminatesTls(tunnel.options)) return `the custom domain ${name} is now a passthrough domain, so the relay no longer serves tunnels on it with its certificates (a \`tunn tls\` tunnel, whose TLS ends at your service, may use it)`;
  return undefined;
}
