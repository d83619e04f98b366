import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';

// One ACME account per directory URL. newAccount is idempotent for a known key (RFC 8555
// 7.3.1), so the key is all that needs keeping; where it is kept is the caller's (the relay's
// database, or files for an agent that runs ACME itself): src/acme holds no storage.

/**
 * Where ACME account keys live. Contract:
 * - accountKey() returns the PEM key for `directoryUrl`, creating and keeping one on first use;
 *   every caller for one directory gets the same key, also when several race (processes
 *   sharing the storage included): implementations MUST be safe for concurrent use.
 * - recordAccountUrl() keeps the account URL the CA gave (for operators; issuance never needs it).
 */
export interface AcmeAccountStore {
  accountKey(directoryUrl: string, email: string | undefined): Promise<string>;
  recordAccountUrl(directoryUrl: string, accountUrl: string): Promise<void>;
}

const generateEc = promisify(generateKeyPair);

/** A fresh P-256 account key as PKCS#8 PEM (what acme-client takes). */
export async function createAcmeAccountKey(): Promise<string> {
  const { privateKey } = await generateEc('ec', { namedCurve: 'P-256', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  return privateKey;
}
