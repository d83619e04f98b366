import { normalizeHost } from '../lib/host.ts';

// On-demand issuance is gated by a decision function (certmagic's OnDemandConfig.DecisionFunc):
// it maps a TLS servername to the certificate that should serve it, or refuses. It runs on
// every handshake without a cached certificate, so it must be fast and must not contact the CA.

export interface CertDecision {
  /** The certificate's key name (first SAN): `*.tunn.mycompany.com`. */
  name: string;
  /** SANs to order, key name first. */
  names: string[];
  /** The subject (a custom domain) whose lifecycle hooks track this certificate, if any. */
  domain?: string;
}

/** Returns the certificate to serve `servername` with, or undefined to refuse the handshake. */
export type DecisionFunc = (servername: string) => Promise<CertDecision | undefined>;

export interface RelayDecisionOptions {
  relayDomain: string;
  /**
   * The certificate for names one label under `parent` when `parent` is a custom domain that
   * may be served (src/domains); undefined refuses. At most one indexed lookup, no network.
   */
  customDomain?: (parent: string, servername: string) => Promise<CertDecision | undefined>;
  /**
   * wildcard (default): one `*.R` + `R` certificate for all relay names (needs DNS-01, i.e. the
   * relay's DNS server is authoritative for R). per-host: one certificate per name (HTTP-01 or
   * TLS-ALPN-01), then `allowRelayHost` should say which names exist (live tunnels), so a
   * scanner's random SNI does not spend the CA's rate limits.
   */
  relayCerts?: 'wildcard' | 'per-host';
  allowRelayHost?: (host: string) => boolean | Promise<boolean>;
}

const HOST = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;

/**
 * The relay's decision: the relay's own domain and one label under it; a name one label under
 * a custom domain the customDomain function approves. Everything else is refused without any
 * network traffic.
 */
export function relayDecisionFunc(opts: RelayDecisionOptions): DecisionFunc {
  const r = normalizeHost(opts.relayDomain);
  return async (servername) => {
    const sn = normalizeHost(servername);
    if (!HOST.test(sn)) return undefined;
    const dot = sn.indexOf('.');
    const parent = sn.slice(dot + 1);
    if (sn === r || parent === r) {
      if (opts.relayCerts === 'per-host') {
        if (opts.allowRelayHost && !(await opts.allowRelayHost(sn))) return undefined;
        return { name: sn, names: [sn] };
      }
      return { name: `*.${r}`, names: [`*.${r}`, r] };
    }
    if (parent.endsWith('.' + r)) return undefined; // deeper names under the relay's zone are never served
    return opts.customDomain?.(parent, sn);
  };
}
