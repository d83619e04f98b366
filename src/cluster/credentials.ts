import 'reflect-metadata'; // @peculiar/x509 (through tsyringe) needs the Reflect metadata polyfill
import * as x509 from '@peculiar/x509';
import { createECDH, createHash, hkdfSync, webcrypto, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TunnError } from '../lib/errors.ts';

// Credentials of the inter-relay link (mutual TLS). From the cluster secret, every relay
// derives the same cluster CA key (HKDF-SHA-256, then a P-256 scalar) and the same CA
// certificate, and issues itself a leaf with a fresh key at start (CN = its node id). Both
// ends of a link require the peer's chain to end at that CA, so only holders of the secret
// take part, and the secret itself never crosses the network. Operators who run their own
// PKI give the CA, certificate and key as files instead (`--cluster-ca/-cert/-key`).

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** The CA certificate's fields are fixed, so every relay derives the same one from the secret. */
const CA_NOT_BEFORE = new Date('2020-01-01T00:00:00Z');
const CA_NOT_AFTER = new Date('2120-01-01T00:00:00Z');
const LEAF_DAYS = 398;
/** The smallest cluster secret accepted (the config check says so to the user). */
export const MIN_CLUSTER_SECRET_LENGTH = 32;

export interface LinkCredentials {
  /** PEM of the CA every peer must chain to. */
  ca: string;
  /** This node's certificate (PEM chain) and key (PEM). */
  cert: string;
  key: string;
  /**
   * Derived credentials: leaves carry the node id as their CN, and a dialling node also
   * checks that the peer's certificate names the node it meant to reach. Absent with files.
   */
  derived: boolean;
}

let providerSet = false;
function crypto(): webcrypto.SubtleCrypto {
  if (!providerSet) {
    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    providerSet = true;
  }
  return webcrypto.subtle;
}

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

function pem(label: string, der: ArrayBuffer | Uint8Array): string {
  return `-----BEGIN ${label}-----\n${Buffer.from(der as ArrayBuffer).toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;
}

/** The cluster CA's key pair, the same on every relay given the same secret. */
async function caKeys(secret: string): Promise<CryptoKeyPair> {
  // A 32-byte string is a valid P-256 scalar unless it is 0 or ≥ n (odds about 2^-32): try the next counter then.
  for (let counter = 0; ; counter++) {
    const d = Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), 'tunn cluster', `tunn cluster CA key v1 ${counter}`, 32));
    const ecdh = createECDH('prime256v1');
    try {
      ecdh.setPrivateKey(d);
    } catch {
      continue;
    }
    const pub = ecdh.getPublicKey();
    const jwk = { kty: 'EC', crv: 'P-256', x: b64u(pub.subarray(1, 33)), y: b64u(pub.subarray(33, 65)) };
    const subtle = crypto();
    const privateKey = await subtle.importKey('jwk', { ...jwk, d: b64u(d) }, ALG, true, ['sign']);
    const publicKey = await subtle.importKey('jwk', jwk, ALG, true, ['verify']);
    return { privateKey, publicKey } as unknown as CryptoKeyPair;
  }
}

function randomSerial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f;
  return Buffer.from(b).toString('hex');
}

/**
 * The cluster CA certificate and key for `secret`. Its name carries a fingerprint of its key,
 * so CAs of two clusters never share a name (a peer of another cluster fails as "unknown CA").
 */
export async function clusterCa(secret: string): Promise<{ certPem: string; keys: CryptoKeyPair; name: string }> {
  const keys = await caKeys(secret);
  const spki = Buffer.from(await crypto().exportKey('spki', keys.publicKey as unknown as webcrypto.CryptoKey));
  const fp = createHash('sha256').update(spki).digest('hex');
  const name = `CN=tunn cluster CA ${fp.slice(0, 16)}`;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${fp.slice(0, 30)}`,
    name,
    notBefore: CA_NOT_BEFORE,
    notAfter: CA_NOT_AFTER,
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keys, name };
}

/**
 * Link credentials for node `nodeId` derived from the cluster secret: the shared CA, and a
 * leaf with a fresh key (never stored) for both the server and the client side of a link.
 */
export async function credentialsFromSecret(secret: string, nodeId: string, now = Date.now()): Promise<LinkCredentials> {
  if (secret.length < MIN_CLUSTER_SECRET_LENGTH) throw new TypeError(`the cluster secret must be at least ${MIN_CLUSTER_SECRET_LENGTH} characters`);
  if (!/^[a-z0-9-]{1,63}$/.test(nodeId)) throw new TypeError(`node id ${JSON.stringify(nodeId)}: use a-z, 0-9 and -`);
  const ca = await clusterCa(secret);
  const subtle = crypto();
  const keys = (await subtle.generateKey(ALG, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
  const notBefore = new Date(now - 5 * 60_000);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${nodeId}`,
    issuer: ca.name,
    notBefore,
    notAfter: new Date(notBefore.getTime() + LEAF_DAYS * 86_400_000),
    signingKey: ca.keys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: nodeId }]),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });
  const key = pem('PRIVATE KEY', await subtle.exportKey('pkcs8', keys.privateKey as unknown as webcrypto.CryptoKey));
  return { ca: ca.certPem, cert: leaf.toString('pem') + '\n', key, derived: true };
}

/** Link credentials from PEM files (`--cluster-ca`, `--cluster-cert`, `--cluster-key`), with errors that name the file. */
export function credentialsFromFiles(files: { ca: string; cert: string; key: string }): LinkCredentials {
  const read = (path: string, flag: string, marker: RegExp): string => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new TunnError('CONFIG_INVALID', `reading ${flag} ${path}: ${(err as Error).message}; pass a readable PEM file`, { cause: err });
    }
    if (!marker.test(text)) throw new TunnError('CONFIG_INVALID', `${flag} ${path} holds no PEM ${flag === '--cluster-key' ? 'private key' : 'certificate'}; pass the PEM file`);
    return text;
  };
  const ca = read(files.ca, '--cluster-ca', /-----BEGIN CERTIFICATE-----/);
  const cert = read(files.cert, '--cluster-cert', /-----BEGIN CERTIFICATE-----/);
  const key = read(files.key, '--cluster-key', /-----BEGIN (EC |RSA )?PRIVATE KEY-----/);
  try {
    if (!new X509Certificate(cert).checkIssued(new X509Certificate(ca))) {
      throw new TunnError('CONFIG_INVALID', `--cluster-cert ${files.cert} is not issued by --cluster-ca ${files.ca}; issue every relay's certificate from the one cluster CA`);
    }
  } catch (err) {
    if (err instanceof TunnError) throw err;
    throw new TunnError('CONFIG_INVALID', `reading the cluster certificates: ${(err as Error).message}`, { cause: err });
  }
  return { ca, cert, key, derived: false };
}

/** The CN of a certificate's subject (a derived leaf's node id). */
export function commonName(subject: { CN?: string | string[] } | undefined): string | undefined {
  const cn = subject?.CN;
  return Array.isArray(cn) ? cn[0] : cn;
}
