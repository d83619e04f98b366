import { createHash, createPublicKey, X509Certificate } from 'node:crypto';

// Public-key pinning (RFC 7469's pin-sha256): base64 of the SHA-256 of the certificate's
// SubjectPublicKeyInfo. It names the key, not the certificate, so it survives a renewal that
// keeps the key (`--keep-key`) and changes with one that does not.

/** The pin of the leaf (first certificate) of a PEM chain. */
export function spkiPin(chainPem: string): string {
  const leaf = new X509Certificate(chainPem);
  const spki = leaf.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** The pin of the public half of a private key (PEM): what the agent will serve once a certificate for it exists. */
export function spkiPinOfKey(keyPem: string): string {
  const spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}
