import * as acme from 'acme-client';
import { request as httpsRequest, type Agent } from 'node:https';
import type { ChallengeSolver } from '../../acme/solver.ts';
import { configureAcmeHttp } from '../../acme/http-settings.ts';
import { acmeErrorMessage, resolveAcmeDirectory } from '../../certs/acme-issuer.ts';
import { certInfo } from '../../certs/issuer.ts';
import type { Clock } from '../../lib/clock.ts';
import { errorMessage, TunnError } from '../../lib/errors.ts';
import { normalizeHost } from '../../lib/host.ts';
import type { AgentCertStore, AgentCertificate } from './cert-store.ts';

// The agent's own ACME client (issue 12): it obtains the certificate for a name it serves
// with TLS ending at the agent, keeps it (cert-store.ts) and renews it at 2/3 of its lifetime.
// Challenges go to the solvers given: DNS-01 through the relay (dns01-requester.ts) for names
// under the relay's zone, TLS-ALPN-01 (alpn-responder.ts) for a customer's CNAME'd domain.
// A restart reuses the stored certificate; `keepKey` keeps the key across renewals, so a pin
// of it (pin.ts) survives them.

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

  constructor(opts: AgentAcmeOptions) {
    if (opts.solvers.length === 0) throw new TypeError('AgentAcme needs at least one challenge solver');
    this.#o = opts;
    this.directoryUrl = resolveAcmeDirectory(opts.directory);
    // acme-client's own retries stay short: a failed issuance falls back at once and AgentTls retries it (retryMs).
    configureAcmeHttp({ caPem: opts.caPem, retry: { maxAttempts: 1, defaultDelaySeconds: 1 } });
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

  /** Orders a new certificate for `name` now, saves it and hands it to onCertificate. */
  async obtain(rawName: string): Promise<AgentCertificate> {
    const name = normalizeHost(rawName);
    const o = this.#o;
    const what = `obtaining a certificate for ${name} from ${this.directoryUrl}`;
    try {
      const accountKey = await o.store.accountKey(this.directoryUrl, o.email, async () => (await acme.crypto.createPrivateEcdsaKey('P-256')).toString());
      const client = new acme.Client({ directoryUrl: this.directoryUrl, accountKey, backoffAttempts: o.backoff?.attempts, backoffMin: o.backoff?.minMs, backoffMax: o.backoff?.maxMs });
      await ensureAccount(client, o.email);
      const previous = o.keepKey ? o.store.load(name) : undefined;
      const keyPem = previous?.keyPem ?? (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
      const [, csr] = await acme.crypto.createCsr({ commonName: name.length <= 64 ? name : undefined, altNames: [name] }, keyPem);
      const solvers = new Map(o.solvers.map((s) => [s.type as string, s]));
      const solverFor = (type: string): ChallengeSolver => {
        const s = solvers.get(type);
        if (!s) throw new TunnError('CERT_ISSUE_FAILED', `the CA offers a ${type} challenge for ${name} and the agent has no ${type} solver for it`);
        return s;
      };
      const chainPem = await client.auto({
        csr,
        email: o.email,
        termsOfServiceAgreed: true,
        // The agent answers through the relay; it cannot check its own public name from inside.
        skipChallengeVerification: true,
        challengePriority: o.solvers.map((s) => s.type),
        challengeCreateFn: (authz, challenge, keyAuth) => solverFor(challenge.type).present(authz, challenge, keyAuth),
        challengeRemoveFn: (authz, challenge, keyAuth) => solverFor(challenge.type).cleanup(authz, challenge, keyAuth),
      });
      o.store.recordAccountUrl(this.directoryUrl, client.getAccountUrl());
      const info = certInfo(chainPem);
      const cert: AgentCertificate = { name, chainPem, keyPem, issuer: `acme:${this.directoryUrl}`, notBefore: info.notBefore, notAfter: info.notAfter };
      o.store.save(cert);
      o.onCertificate?.(cert);
      return cert;
    } catch (err) {
      // acme-client loses the cause of a network error once its retries are spent ("Cannot
      // read properties of undefined"); ask the directory once more to find it.
      const unreachable = err instanceof TypeError ? await unreachableReason(this.directoryUrl) : undefined;
      throw new TunnError('CERT_ISSUE_FAILED', `${what}: ${unreachable ? `cannot reach the ACME server: ${unreachable}` : acmeErrorMessage(err)}`, { cause: err });
    }
  }
}

/**
 * Looks the account up by its key and creates it when the CA does not know it (first use, or
 * a CA that lost its state); as the relay's issuer does (src/certs/acme-issuer.ts).
 */
async function ensureAccount(client: acme.Client, email: string | undefined): Promise<void> {
  try {
    await client.createAccount({ onlyReturnExisting: true });
  } catch (err) {
    if (!/accountDoesNotExist/.test(String((err as { type?: string }).type ?? '')) && !/does not exist|unable to find existing account/i.test(errorMessage(err))) throw err;
    await client.createAccount({ termsOfServiceAgreed: true, contact: email ? [`mailto:${email}`] : undefined });
  }
}

/** Why `url` cannot be fetched (e.g. "connect ECONNREFUSED 127.0.0.1:14000"), or undefined when it can. */
function unreachableReason(url: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = httpsRequest(url, { agent: acme.axios.defaults.httpsAgent as Agent, timeout: 5000 }, (res) => {
      res.resume();
      resolve(undefined);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 5 s`)));
    req.on('error', (err) => resolve(err.message));
    req.end();
  });
}
