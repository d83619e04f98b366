import { readFile } from 'node:fs/promises';
import { TunnError } from '../lib/errors.ts';
import { certInfo, nameMatches, type IssuedCertificate, type Issuer } from './issuer.ts';

// Static certificate files (seed 001: RELAY_TLS_CERT_FILE / RELAY_TLS_KEY_FILE; here
// --tls-cert/--tls-key). The files are read on every issue(), so replacing them and letting
// the manager "renew" picks up the new pair without a restart.

export class FilesIssuer implements Issuer {
  readonly id = 'files';
  readonly #certFile: string;
  readonly #keyFile: string;

  constructor(certFile: string, keyFile: string) {
    this.#certFile = certFile;
    this.#keyFile = keyFile;
  }

  async issue(names: string[]): Promise<IssuedCertificate> {
    const [chainPem, keyPem] = await Promise.all([readFile(this.#certFile, 'utf8'), readFile(this.#keyFile, 'utf8')]).catch((err: Error) => {
      throw new TunnError('CERT_ISSUE_FAILED', `reading the certificate files ${this.#certFile} and ${this.#keyFile}: ${err.message}`, { cause: err });
    });
    const info = certInfo(chainPem);
    const missing = names.filter((n) => !info.names.some((p) => (n.startsWith('*.') ? p === n : nameMatches(p, n))));
    if (missing.length) {
      throw new TunnError('CERT_ISSUE_FAILED', `the certificate in ${this.#certFile} does not cover ${missing.join(', ')} (it has ${info.names.join(', ') || 'no DNS names'})`);
    }
    return { chainPem, keyPem, issuer: this.id, names, notBefore: info.notBefore, notAfter: info.notAfter };
  }
}
