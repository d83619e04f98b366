import 'reflect-metadata'; // @peculiar/x509 (through tsyringe) needs the Reflect metadata polyfill
import * as x509 from '@peculiar/x509';
import { webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tightenIfExists, writePrivateFile } from '../lib/private-files.ts';

// A local certificate authority for `--dev`: created once in the data dir, it signs leaf
// certificates for the relay's names so that curl --cacert, browsers that import it, and
// agents with --relay-ca can verify the relay without a public CA.

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface KeyAndCert {
  certPem: string;
  keyPem: string;
}

export const DEV_CA_CERT_FILE = 'dev-ca.pem';
const DEV_CA_KEY_FILE = 'dev-ca-key.pem';

function serial(): string {
  // A positive 16-byte serial in hex.
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f;
  return Buffer.from(b).toString('hex');
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

async function importKeyPem(pem: string): Promise<CryptoKey> {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  return (await webcrypto.subtle.importKey('pkcs8', der, ALG, true, ['sign'])) as unknown as CryptoKey;
}

/** DER: tag, length (short or long form), content. */
function tlv(tag: number, content: Uint8Array): Buffer {
  const n = content.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), content]);
}

export const NAME_CONSTRAINTS_OID = '2.5.29.30';

/**
 * RFC 5280 §4.2.1.10 NameConstraints permitting only `domain` (and its subdomains), localhost and
 * the loopback addresses. A dev CA that a user trusts system-wide (`tunn trust`) then cannot
 * vouch for any other name, even if its key leaks from the data dir.
 */
export function devNameConstraints(domain: string): Buffer {
  const dns = (name: string) => tlv(0x30, tlv(0x82, Buffer.from(name, 'ascii'))); // GeneralSubtree { dNSName [2] }
  const ip = (addrAndMask: number[]) => tlv(0x30, tlv(0x87, Buffer.from(addrAndMask))); // GeneralSubtree { iPAddress [7] }
  const v4 = ip([127, 0, 0, 0, 255, 0, 0, 0]);
  const v6 = ip([...Array(15).fill(0), 1, ...Array(16).fill(0xff)]);
  const permitted = tlv(0xa0, Buffer.concat([dns(domain), ...(domain === 'localhost' ? [] : [dns('localhost')]), v4, v6]));
  return tlv(0x30, permitted);
}

/** Creates a self-signed CA; with `constrainTo`, name-constrained to that domain (devNameConstraints). */
export async function createCa(commonName: string, days = 3650, constrainTo?: string): Promise<KeyAndCert> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
  const notBefore = new Date(Date.now() - 60_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    notBefore,
    notAfter: new Date(notBefore.getTime() + days * 86_400_000),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ...(constrainTo ? [new x509.Extension(NAME_CONSTRAINTS_OID, true, new Uint8Array(devNameConstraints(constrainTo)))] : []),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

/** Signs a leaf certificate for `names` (DNS names or IP addresses) with `ca`. */
export async function issueLeaf(ca: KeyAndCert, names: string[], days = 90, notBefore = new Date(Date.now() - 60_000)): Promise<KeyAndCert> {
  if (names.length === 0) throw new TypeError('issueLeaf needs at least one name');
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importKeyPem(ca.keyPem);
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
  const sans = names.map((n) => (/^[\d.]+$|:/.test(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${names[0]}`,
    issuer: caCert.subject,
    notBefore,
    notAfter: new Date(notBefore.getTime() + days * 86_400_000),
    signingKey: caKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(sans, false),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return { certPem: cert.toString('pem') + '\n' + ca.certPem, keyPem: await exportKeyPem(keys.privateKey) };
}

/** Whether a certificate carries name constraints (any). */
export function hasNameConstraints(certPem: string): boolean {
  return new x509.X509Certificate(certPem).getExtension(NAME_CONSTRAINTS_OID) !== null;
}

/** Whether a CA certificate is name-constrained exactly as a dev CA for `domain` is. */
export function isConstrainedTo(certPem: string, domain: string): boolean {
  const ext = new x509.X509Certificate(certPem).getExtension(NAME_CONSTRAINTS_OID);
  return ext !== null && Buffer.from(ext.value).equals(devNameConstraints(domain));
}

/**
 * The dev CA of a data dir for `domain`, created on first use. Returns it with the path of its
 * certificate, and `replaced` when an older CA was there that was not name-constrained to
 * `domain` (from before constraints, or for another --domain): a sentence for the log.
 */
export async function ensureDevCa(dataDir: string, domain: string): Promise<KeyAndCert & { certPath: string; replaced?: string }> {
  const certPath = join(dataDir, DEV_CA_CERT_FILE);
  const keyPath = join(dataDir, DEV_CA_KEY_FILE);
  let replaced: string | undefined;
  if (existsSync(certPath) && existsSync(keyPath)) {
    tightenIfExists(keyPath);
    const ca = { certPem: readFileSync(certPath, 'utf8'), keyPem: readFileSync(keyPath, 'utf8') };
    const valid = new X509Certificate(ca.certPem);
    const constrained = isConstrainedTo(ca.certPem, domain);
    if (constrained && Date.parse(valid.validTo) > Date.now() + 86_400_000) return { ...ca, certPath };
    if (!constrained) {
      replaced = `the dev CA in ${certPath} could vouch for names beyond ${domain} (no name constraints for it), so it was replaced by one limited to ${domain}, localhost and loopback addresses: give agents and browsers the new ${certPath}; if you trusted the old one, run \`tunn untrust\` and then \`tunn trust\``;
    }
  }
  const ca = await createCa(`tunn dev CA for ${domain} (local only)`, 3650, domain);
  writePrivateFile(keyPath, ca.keyPem);
  writeFileSync(certPath, ca.certPem, { mode: 0o644 });
  return { ...ca, certPath, replaced };
}
