import { createAcmeAccountKey } from '../../acme/account.ts';
import type { ChallengeSolver } from '../../acme/solver.ts';
import { AcmeIssuer } from '../../certs/acme-issuer.ts';
import type { Clock } from '../../lib/clock.ts';
import { errorMessage, TunnError } from '../../lib/errors.ts';
import { normalizeHost } from '../../lib/host.ts';
import type { AgentCertStore, AgentCertificate } from './cert-store.ts';

// The agent's own ACME client (issue 12): it obtains the certificate for a name it serves
// with TLS ending at the agent, keeps it (cert-store.ts) and renews it at 2/3 of its lifetime.
// Challenges go to the solvers given: DNS-01 through the relay (dns01-requester.ts) for names
// under the relay's zone, TLS-ALPN-01 (alpn-responder.ts) for a customer's CNAME'd domain.
// A restart reuses the stored certificate; `keepKey` keeps the key across renewals, so a pin
// of it (pin.ts) survives them. The ACME protocol work is the relay's AcmeIssuer
// (src/certs/acme-issuer.ts) with this agent's sealed files as its account store.

export interface AgentAcmeOptions {
  /** A directory URL or a preset (letsencrypt, letsencrypt-staging): --acme-directory. */
  directory: string;
  email?: string;
  /** Extra CA (PEM) for the ACME server's own HTTPS (--acme-ca; Pebble in tests). */
  caPem?: string;
  store: AgentCertStore;
  /** In priority order. */
  solvers: ChallengeSolver[];
  /** --keep-key: renewals reuse the certificate's key. */
  keepKey?: boolean;
  clock: Clock;
  /** acme-client polling back-off (tests use 50/500 ms). */
  backoff?: { attempts?: number; minMs?: number; maxMs?: number };
  /** A certificate is ready to serve (first issuance, renewal, or the stored one at start). */
  onCertificate?: (cert: AgentCertificate) => void;
}

/** When a certificate is renewed: at 2/3 of its lifetime. */
export function renewalDueAt(cert: Pick<AgentCertificate, 'notBefore' | 'notAfter'>): number {
  return cert.notBefore + ((cert.notAfter - cert.notBefore) * 2) / 3;
}

export class AgentAcme {
  readonly directoryUrl: string;
  readonly #o: AgentAcmeOptions;
  readonly #issuer: AcmeIssuer;

  constructor(opts: AgentAcmeOptions) {
    if (opts.solvers.length === 0) throw new TypeError('AgentAcme needs at least one challenge solver');
    this.#o = opts;
    const store = opts.store;
    this.#issuer = new AcmeIssuer({
      directory: opts.directory,
      email: opts.email,
      caPem: opts.caPem,
      // acme-client's own retries stay short: a failed issuance falls back at once and AgentTls retries it (retryMs).
      httpRetry: { maxAttempts: 1, defaultDelaySeconds: 1 },
      accounts: { accountKey: (dir, email) => store.accountKey(dir, email, createAcmeAccountKey), recordAccountUrl: async (dir, url) => store.recordAccountUrl(dir, url) },
      solvers: opts.solvers,
      backoff: opts.backoff,
    });
    this.directoryUrl = this.#issuer.directoryUrl;
  }

  /** The agent's ACME account URL at this directory (CAA accounturi), once it has one. */
  accountUrl(): string | undefined {
    return this.#o.store.accountUrl(this.directoryUrl);
  }

  /** The certificate for `name`: the stored one while it is not due for renewal, else a new one. */
  async ensure(name: string): Promise<AgentCertificate> {
    const stored = this.#o.store.load(name);
    if (stored && this.#o.clock.now() < renewalDueAt(stored)) {
      this.#o.onCertificate?.(stored);
      return stored;
    }
    return this.obtain(name);
  }

  /** Renews every stored certificate of `names` that is due now; the names renewed. Failures are thrown together once all were tried. */
  async renewDue(names: string[]): Promise<string[]> {
    const renewed: string[] = [];
    const failed: string[] = [];
    for (const name of names) {
      const c = this.#o.store.load(name);
      if (c && this.#o.clock.now() < renewalDueAt(c)) continue;
      try {
        await this.obtain(name);
        renewed.push(name);
      } catch (err) {
        failed.push(errorMessage(err));
      }
    }
    if (failed.length) throw new TunnError('CERT_ISSUE_FAILED', failed.join('; '));
    return renewed;
  }

  /** Orders a new certificate for `name` now (the relay's AcmeIssuer, this agent's account store), saves it and hands it to onCertificate. */
  async obtain(rawName: string): Promise<AgentCertificate> {
    const name = normalizeHost(rawName);
    const o = this.#o;
    const previous = o.keepKey ? o.store.load(name) : undefined;
    const issued = await this.#issuer.issue([name], { keyPem: previous?.keyPem });
    const cert: AgentCertificate = { name, chainPem: issued.chainPem, keyPem: issued.keyPem, issuer: issued.issuer, notBefore: issued.notBefore, notAfter: issued.notAfter };
    o.store.save(cert);
    o.onCertificate?.(cert);
    return cert;
  }
}
