import { TunnError } from '../../lib/errors.ts';
import { normalizeHost } from '../../lib/host.ts';

// CAA (RFC 8659) records that make agent-terminated TLS stick (seed 000, "Hardening
// options"): `issue` with `accounturi` (RFC 8657) lets only this agent's ACME account at that
// CA issue for the name, so not even the relay's operator can get a certificate for it;
// `issuewild ";"` on a custom domain forbids wildcards under it, so no relay wildcard can cover
// the name either.

// The CAA issuer domain of well-known ACME CAs, by directory host.
const CA_DOMAINS: Record<string, string> = {
  'acme-v02.api.letsencrypt.org': 'letsencrypt.org',
  'acme-staging-v02.api.letsencrypt.org': 'letsencrypt.org',
  'acme.zerossl.com': 'sectigo.com',
  'dv.acme-v02.api.pki.goog': 'pki.goog',
  'dv.acme-v02.test-api.pki.goog': 'pki.goog',
  'api.buypass.com': 'buypass.com',
  'api.test4.buypass.no': 'buypass.com',
};

/** The CAA issuer domain for an ACME directory, or undefined when tunn does not know the CA (ask for --ca-domain). */
export function caaIssuerFor(directoryUrl: string): string | undefined {
  try {
    return CA_DOMAINS[new URL(directoryUrl).hostname];
  } catch {
    return undefined;
  }
}

export interface CaaInput {
  /** The agent-terminated host name. */
  name: string;
  /** The CA's CAA issuer domain (letsencrypt.org). */
  caDomain: string;
  /** This agent's ACME account URL at that CA. */
  accountUri: string;
  /** The custom domain the name is under, when it was added with --terminate-at agent: also forbid wildcards there. */
  customDomain?: string;
}

/** The zone-file lines, `issue` first. */
export function caaRecords(i: CaaInput): string[] {
  if (!/^[a-z0-9.-]+$/i.test(i.caDomain)) throw new TunnError('INVALID_INPUT', `"${i.caDomain}" is not a CA domain for a CAA record (e.g. letsencrypt.org)`);
  if (!/^https:\/\/[^\s";]+$/.test(i.accountUri)) throw new TunnError('INVALID_INPUT', `"${i.accountUri}" is not an ACME account URL (https://…)`);
  const lines = [`${normalizeHost(i.name)}. CAA 0 issue "${i.caDomain.toLowerCase()}; accounturi=${i.accountUri}"`];
  if (i.customDomain) lines.push(`${normalizeHost(i.customDomain)}. CAA 0 issuewild ";"`);
  return lines;
}
