import * as acme from 'acme-client';
import { request as httpsRequest } from 'node:https';
import type { AcmeAccountStore } from '../acme/account.ts';
import { fetchRenewalWindow } from '../acme/ari.ts';
import { acmeHttpsAgent, configureAcmeHttp, type AcmeHttpSettings } from '../acme/http-settings.ts';
import type { ChallengeSolver } from '../acme/solver.ts';
import { TunnError, errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { certInfo, type IssuedCertificate, type Issuer, type RenewalHint } from './issuer.ts';

// ACME issuer (RFC 8555) on acme-client: any directory URL, the account key kept by an
// AcmeAccountStore (the relay's database, or files), challenges handed to the configured
// solvers in priority order.

export const ACME_DIRECTORIES = {
  letsencrypt: acme.directory.letsencrypt.production,
  'letsencrypt-staging': acme.directory.letsencrypt.staging,
} as const;

/** A directory URL from `--acme-directory` (a URL or a preset name). */
export function resolveAcmeDirectory(value: string): string {
  const preset = ACME_DIRECTORIES[value as keyof typeof ACME_DIRECTORIES];
  if (preset) return preset;
  if (!/^https?:\/\//.test(value)) {
    throw new TunnError('CONFIG_INVALID', `--acme-directory "${value}" is neither a URL nor one of: ${Object.keys(ACME_DIRECTORIES).join(', ')}`);
  }
  return value;
}

export interface AcmeIssuerOptions {
  /** A directory URL or a preset (letsencrypt, letsencrypt-staging). */
  directory: string;
  email?: string;
  /** Extra CA (PEM) to trust for the ACME server's own HTTPS (private CAs such as Pebble). */
  caPem?: string;
  /** acme-client's own HTTP retries (process-wide; see acme/http-settings.ts). */
  httpRetry?: AcmeHttpSettings['retry'];
  /** Where the account key is kept. */
  accounts: AcmeAccountStore;
  /** In priority order; the first whose type an authorization offers is used. */
  solvers: ChallengeSolver[];
  /** acme-client polling back-off (its defaults: 10 attempts, 5000 ms min, 30000 ms max; tests use 50/500). */
  backoff?: { attempts?: number; minMs?: number; maxMs?: number };
  logger?: Logger;
}

export class AcmeIssuer implements Issuer {
  readonly id: string;
  readonly directoryUrl: string;
  readonly #opts: AcmeIssuerOptions;

  constructor(opts: AcmeIssuerOptions) {
    if (opts.solvers.length === 0) throw new TypeError('AcmeIssuer needs at least one challenge solver');
    this.#opts = opts;
    this.directoryUrl = resolveAcmeDirectory(opts.directory);
    this.id = `acme:${this.directoryUrl}`;
    configureAcmeHttp({ caPem: opts.caPem, retry: opts.httpRetry });
  }

  /**
   * `request.keyPem`: the certificate's key to reuse (an agent's --keep-key, so a pin of it
   * survives renewal); default: a new P-256 key. `request.replaces`: the ARI certificate id
   * (RFC 9773 section 5) of the certificate this order renews; send it only to a CA whose
   * directory has `renewalInfo`. A CA that refuses it (already replaced) gets the order again
   * without it.
   */
  async issue(names: string[], request: { keyPem?: string; replaces?: string } = {}): Promise<IssuedCertificate> {
    const what = `issuing a certificate for ${names.join(', ')} from ${this.directoryUrl}`;
    try {
      const o = this.#opts;
      const accountKey = await o.accounts.accountKey(this.directoryUrl, o.email);
      const client = new acme.Client({
        directoryUrl: this.directoryUrl,
        accountKey,
        backoffAttempts: o.backoff?.attempts,
        backoffMin: o.backoff?.minMs,
        backoffMax: o.backoff?.maxMs,
      });
      await ensureAccount(client, o.email);
      if (request.replaces) {
        // acme-client's auto() places the order itself; its createOrder takes any payload, so the field is added there.
        const createOrder = client.createOrder.bind(client);
        const replaces = request.replaces;
        client.createOrder = async (data) => {
          try {
            return await createOrder({ ...data, replaces } as typeof data);
          } catch (err) {
            if (!/alreadyReplaced|replaces/i.test(`${String((err as { type?: string }).type ?? '')} ${acmeErrorMessage(err)}`)) throw err;
            o.logger?.warn({ names, replaces, err: acmeErrorMessage(err) }, 'the CA refused `replaces` in the order; ordering without it');
            return createOrder(data);
          }
        };
      }
      const key = request.keyPem ?? (await acme.crypto.createPrivateEcdsaKey('P-256'));
      const [, csr] = await acme.crypto.createCsr({ commonName: names[0]!.length <= 64 ? names[0] : undefined, altNames: names }, key);
      const solvers = new Map(o.solvers.map((s) => [s.type as string, s]));
      const solverFor = (type: string) => {
        const s = solvers.get(type);
        if (!s) throw new TunnError('CERT_ISSUE_FAILED', `the CA offers only a ${type} challenge here and no ${type} solver is configured`);
        return s;
      };
      const chainPem = await client.auto({
        csr,
        email: o.email,
        termsOfServiceAgreed: true,
        // The relay answers challenges itself and cannot resolve its own public name from inside.
        skipChallengeVerification: true,
        challengePriority: o.solvers.map((s) => s.type),
        challengeCreateFn: (authz, challenge, keyAuth) => {
          o.logger?.info({ identifier: authz.identifier.value, wildcard: Boolean(authz.wildcard), challenge: challenge.type }, `presenting a ${challenge.type} challenge for ${authz.identifier.value}`);
          return solverFor(challenge.type).present(authz, challenge, keyAuth);
        },
        challengeRemoveFn: (authz, challenge, keyAuth) => solverFor(challenge.type).cleanup(authz, challenge, keyAuth),
      });
      // The certificate is issued either way: a failure to note the account URL is only logged.
      const accountUrl = client.getAccountUrl();
      await o.accounts
        .recordAccountUrl(this.directoryUrl, accountUrl)
        .catch((err) => o.logger?.warn({ err: errorMessage(err), accountUrl }, `recording the ACME account URL for ${this.directoryUrl} failed: ${errorMessage(err)}`));
      const info = certInfo(chainPem);
      o.logger?.info({ names, issuer: this.id, notAfter: new Date(info.notAfter).toISOString() }, 'certificate issued');
      return { chainPem, keyPem: key.toString(), issuer: this.id, names, notBefore: info.notBefore, notAfter: info.notAfter };
    } catch (err) {
      // acme-client loses the cause of a network error once its retries are spent (it reports
      // "Cannot read properties of undefined"); ask the directory once more to find it.
      const unreachable = err instanceof TypeError ? await unreachableReason(this.directoryUrl) : undefined;
      const reason = unreachable ? `cannot reach the ACME server: ${unreachable}` : acmeErrorMessage(err);
      throw new TunnError('CERT_ISSUE_FAILED', `${what}: ${reason}`, { cause: err });
    }
  }

  async renewalHint(chainPem: string): Promise<RenewalHint | undefined> {
    try {
      return await fetchRenewalWindow(this.directoryUrl, chainPem);
    } catch (err) {
      // As in issue(): acme-client's axios loses the cause of a network error.
      const unreachable = err instanceof TypeError ? await unreachableReason(this.directoryUrl) : undefined;
      this.#opts.logger?.warn({ err: unreachable ? `cannot reach the ACME server: ${unreachable}` : errorMessage(err) }, 'ACME renewal information unavailable');
      return undefined;
    }
  }
}

/**
 * Looks the account up by its key (RFC 8555 7.3.1 onlyReturnExisting) and creates it when the
 * CA does not know it (first use, or a CA that lost its state). acme-client's own path would
 * send an "empty update" for an existing account, which Pebble rejects.
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
async function unreachableReason(url: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = httpsRequest(url, { agent: acmeHttpsAgent(), timeout: 5000 }, (res) => {
      res.resume();
      resolve(undefined);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 5 s`)));
    req.on('error', (err) => resolve(err.message));
    req.end();
  });
}

/** The CA's own words where there are some (problem document detail), else the error message. */
export function acmeErrorMessage(err: unknown): string {
  const e = err as { response?: { data?: { detail?: string; type?: string } }; code?: string };
  const detail = e?.response?.data?.detail;
  if (detail) return detail;
  return errorMessage(err);
}
