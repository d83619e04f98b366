import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import { TunnError } from '../../lib/errors.ts';
import { normalizeHost } from '../../lib/host.ts';

// The certificates the agent serves, by name. A handshake picks its context from the
// ClientHello's SNI (exact name, then a `*.parent` entry); set() replaces a name's context for
// handshakes that start afterwards, so a renewal never touches a connection already open (its
// TLS session keeps the key it negotiated with). With a client CA (`--client-ca`), every
// context asks for and verifies a client certificate (mTLS).

export interface ServedCertificate {
  /** The leaf first, then intermediates. */
  chainPem: string;
  keyPem: string;
}

export class TlsContexts {
  readonly #byName = new Map<string, SecureContext>();
  readonly #clientCaPem: string | undefined;
  readonly #clientCas: X509Certificate[];
  #base: SecureContext | undefined;

  /** `clientCaPem`: one or more CA certificates (PEM) whose direct leaves may connect (`--client-ca`). */
  constructor(opts: { clientCaPem?: string } = {}) {
    this.#clientCaPem = opts.clientCaPem;
    this.#clientCas = opts.clientCaPem ? parseCas(opts.clientCaPem) : [];
  }

  /**
   * Why a visitor's client certificate is refused, or undefined when a --client-ca CA issued
   * it, it is within its validity and (if it names purposes) it is for client authentication.
   * Checked here, not left to OpenSSL: a TLSSocket made outside tls.Server asks for the
   * certificate but does not act on the chain's verification.
   */
  clientCertProblem(peer: X509Certificate | undefined, now = Date.now()): string | undefined {
    if (!peer) return 'this agent requires a client certificate (--client-ca) and the visitor sent none';
    if (now < Date.parse(peer.validFrom) || now > Date.parse(peer.validTo)) return `the client certificate (${peer.subject}) is outside its validity (${peer.validFrom} to ${peer.validTo})`;
    if (peer.keyUsage && !peer.keyUsage.includes('1.3.6.1.5.5.7.3.2')) return `the client certificate (${peer.subject}) is not for client authentication`;
    const issuer = this.#clientCas.find((ca) => peer.checkIssued(ca) && peer.verify(ca.publicKey));
    return issuer ? undefined : `the client certificate (${peer.subject}) was not issued by a CA in --client-ca`;
  }

  /** The context a handshake starts with (before SNI picks one): carries the client CA, if any. */
  get base(): SecureContext {
    return (this.#base ??= createSecureContext(this.#clientCaPem ? { ca: this.#clientCaPem } : {}));
  }

  /** Whether client certificates are required (mTLS). */
  get requiresClientCert(): boolean {
    return this.#clientCaPem !== undefined;
  }

  /** Serves `cert` for `name` (a host, or `*.parent`) from the next handshake on. */
  set(name: string, cert: ServedCertificate): void {
    this.#byName.set(normalizeHost(name), createSecureContext({ cert: cert.chainPem, key: cert.keyPem, ...(this.#clientCaPem ? { ca: this.#clientCaPem } : {}) }));
  }

  delete(name: string): void {
    this.#byName.delete(normalizeHost(name));
  }

  /** The context for a ClientHello's server name, or undefined when the agent serves no certificate for it. */
  lookup(servername: string | undefined): SecureContext | undefined {
    if (!servername) return undefined;
    const n = normalizeHost(servername);
    const exact = this.#byName.get(n);
    if (exact) return exact;
    const dot = n.indexOf('.');
    return dot > 0 ? this.#byName.get(`*.${n.slice(dot + 1)}`) : undefined;
  }
}

function parseCas(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new TunnError('CONFIG_INVALID', '--client-ca holds no PEM certificate: give a file with one or more "-----BEGIN CERTIFICATE-----" blocks');
  return blocks.map((b) => new X509Certificate(b));
}
