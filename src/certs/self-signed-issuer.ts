import { issueLeaf, type KeyAndCert } from './dev-ca.ts';
import { certInfo, type IssuedCertificate, type Issuer } from './issuer.ts';

// The dev fallback (seed 001 "self-signed fallback"): leaves signed by the local dev CA
// (dev-ca.ts ensureDevCa), which `curl --cacert` or an agent's --relay-ca can trust.

export class SelfSignedIssuer implements Issuer {
  readonly id = 'self-signed';
  readonly #ca: KeyAndCert;
  readonly #days: number;

  constructor(ca: KeyAndCert, opts: { days?: number } = {}) {
    this.#ca = ca;
    this.#days = opts.days ?? 90;
  }

  async issue(names: string[]): Promise<IssuedCertificate> {
    const leaf = await issueLeaf(this.#ca, names, this.#days);
    const info = certInfo(leaf.certPem);
    return { chainPem: leaf.certPem, keyPem: leaf.keyPem, issuer: this.id, names, notBefore: info.notBefore, notAfter: info.notAfter };
  }
}
