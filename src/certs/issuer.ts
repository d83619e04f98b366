import { X509Certificate } from 'node:crypto';
import { normalizeHost } from '../lib/host.ts';

// Issuers behind one interface (certmagic's Issuer): ACME (any directory), static files,
// self-signed for dev. The cert manager decides what to issue and when; an issuer only issues.

export interface IssuedCertificate {
  /** Leaf first, then intermediates, PEM. */
  chainPem: string;
  /** PKCS#8 private key PEM (sealed before it is stored). */
  keyPem: string;
  /** The issuer's id (IssuerLike.id). */
  issuer: string;
  names: string[];
  notBefore: number;
  notAfter: number;
}

export interface RenewalHint {
  /** Renew at a random moment in [start, end] (ms since epoch). */
  start: number;
  end: number;
  checkAgainAt?: number;
}

/**
 * Issuer contract:
 * - issue() returns a certificate whose SANs are exactly `names` (wildcards as `*.name`), or
 *   throws an Error whose message says what was being done and carries the CA's reason.
 * - Implementations MUST be safe for concurrent use; de-duplicating concurrent requests for
 *   one name is the cert manager's job, not the issuer's.
 * - renewalHint() is optional: a CA-suggested renewal window (ACME ARI), or undefined when the
 *   CA offers none. It must not throw for a CA that simply lacks the feature.
 * - `request.replaces` (ACME ARI, RFC 9773 section 5): the id of the certificate this order
 *   renews, passed only for a certificate of this issuer that the CA gave a renewal window;
 *   issuers without ARI ignore it.
 */
export interface Issuer {
  readonly id: string;
  issue(names: string[], request?: { replaces?: string }): Promise<IssuedCertificate>;
  renewalHint?(chainPem: string): Promise<RenewalHint | undefined>;
}

/** Validity and SANs of the leaf of a PEM chain. */
export function certInfo(chainPem: string): { notBefore: number; notAfter: number; names: string[]; fingerprint: string } {
  const leaf = new X509Certificate(chainPem);
  const names = (leaf.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  return { notBefore: Date.parse(leaf.validFrom), notAfter: Date.parse(leaf.validTo), names, fingerprint: leaf.fingerprint256 };
}

/** True when certificate name `pattern` (possibly `*.x`) covers host `name` (one label, RFC 6125). */
export function nameMatches(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const n = normalizeHost(name);
  if (!p.startsWith('*.')) return p === n;
  const dot = n.indexOf('.');
  return dot > 0 && n.slice(dot + 1) === p.slice(2);
}
