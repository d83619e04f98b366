import type { TunnelOptions } from '../protocol/messages.ts';
import type { LeaseKind } from './leases.ts';

// A lease's kind says enough about its tunnel for any other relay to treat a visitor exactly
// as the holder would (issue 14): which of the edge's routes the visitor's TLS takes there
// (raw by SNI, or ended at the relay), and what is carried over the link.

/** The lease kind of a tunnel with these options; `tlsAtAgent`: its TLS ends at its agent now. */
export function leaseKindOf(o: Pick<TunnelOptions, 'kind' | 'public' | 'backend'>, tlsAtAgent: boolean): LeaseKind {
  const kind = o.kind ?? 'http';
  if (kind === 'tls') {
    // No public SNI route at all: only `tunn connect` reaches it, and HTTP to it is answered 426.
    if (!o.public) return 'tls-private';
    // Not `tls-at-agent`: that is an http tunnel's, which `tunn connect` does not reach; this one it does, as on the holder.
    if (tlsAtAgent) return 'tls-tcp-at-agent';
    return (o.backend ?? 'raw') === 'tcp' ? 'tls-tcp' : 'tls';
  }
  if (kind === 'http' && tlsAtAgent) return 'tls-at-agent';
  return kind;
}

/** Whether another relay's edge routes the visitor's TLS for a lease of this kind raw (by SNI, never decrypted) to the holder. */
export function routedRaw(k: LeaseKind | undefined): boolean {
  return k === 'tls' || k === 'tls-at-agent' || k === 'tls-tcp-at-agent';
}

/** The tunnel kind behind a lease kind (`tunn connect` reaches tcp, udp and tls tunnels held elsewhere). */
export function tunnelKindOfLease(k: LeaseKind): 'http' | 'tcp' | 'udp' | 'tls' {
  if (k === 'tls' || k === 'tls-tcp' || k === 'tls-private' || k === 'tls-tcp-at-agent') return 'tls';
  if (k === 'tls-at-agent') return 'http';
  return k;
}

/**
 * Whether TLS for a lease of this kind ends at a relay (so a relay obtains a certificate for the
 * name on demand, as the holder does: http tunnels, `--backend tcp`, and an agent-terminated
 * tunnel's fallback), not at a target (raw passthrough) nor at nothing (private tls, tcp, udp).
 */
export function isTerminatedKind(k: LeaseKind | undefined): boolean {
  return k === 'http' || k === 'tls-tcp' || k === 'tls-at-agent' || k === 'tls-tcp-at-agent';
}
