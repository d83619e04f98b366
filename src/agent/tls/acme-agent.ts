import { createAcmeAccountKey } from '../../acme/account.ts';
import { ariCertId, fetchRenewalWindow, renewalInfoUrl } from '../../acme/ari.ts';
import type { ChallengeSolver } from '../../acme/solver.ts';
import { AcmeIssuer } from '../../certs/acme-issuer.ts';
import type { Clock } from '../../lib/clock.ts';
import { errorMessage, TunnError } from '../../lib/errors.ts';
import { normalizeHost } from '../../lib/host.ts';
import type { AgentCertStore, AgentCertificate, RenewalPlan } from './cert-store.ts';

// The agent's own ACME client (issue 12): it obtains the certificate for a name it serves
// with TLS ending at the agent, keeps it (cert-store.ts) and renews it when its plan says:
// where the CA offers ACME Renewal Information (RFC 9773: `renewalInfo` in its directory), at a
// random time in the CA's suggested window, asked again when the CA's Retry-After says (within
// ARI_POLL's bounds), and the new order names the certificate it `replaces`; else, or while the
// CA's answer cannot be had, at 2/3 of the lifetime. The plan is stored with the certificate, so
// a restart keeps the time picked.
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

/** 2/3 of a certificate's lifetime: when it is renewed without ARI. */
export function renewalDueAt(cert: Pick<AgentCertificate, 'notBefore' | 'notAfter'>): number {
  return cert.notBefore + ((cert.notAfter - cert.notBefore) * 2) / 3;
}

/** When `cert` is renewed: the time picked in the CA's ARI window, else 2/3 of its lifetime. */
export function renewAt(cert: Pick<AgentCertificate, 'notBefore' | 'notAfter' | 'renewal'>): number {
  return cert.renewal?.source === 'ari' ? cert.renewal.at : renewalDueAt(cert);
}

/**
 * How often the agent asks the CA for renewal information: the CA's Retry-After, but no sooner
 * than a minute and no later than a day; 6 hours when the CA gives none; an hour after a failed
 * ask; a day when the CA offers no ARI (it may start to).
 */
export const ARI_POLL = { minMs: 60_000, maxMs: 86_400_000, defaultMs: 6 * 3_600_000, afterFailureMs: 3_600_000 } as const;

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

  /**
   * The certificate for `name`: the stored one while its stored plan says it is not due (served at
   * once: the plan is asked of the CA again in the background, so a CA that hangs never delays
   * it; a next call sees the new plan), else one whose refreshed plan is still not due, else a new one.
   */
  async ensure(name: string): Promise<AgentCertificate> {
    const stored = this.#o.store.load(name);
    if (stored && this.#o.clock.now() < renewAt(stored)) {
      this.#refreshInBackground(stored);
      this.#o.onCertificate?.(stored);
      return stored;
    }
    if (stored) {
      const c = await this.#refreshPlan(stored);
      if (this.#o.clock.now() < renewAt(c)) {
        this.#o.onCertificate?.(c);
        return c;
      }
    }
    return this.obtain(name);
  }

  /** Names whose plan is being asked of the CA in the background (one ask at a time per name). */
  readonly #refreshing = new Set<string>();

  #refreshInBackground(c: AgentCertificate): void {
    if (this.#refreshing.has(c.name) || (c.renewal && this.#o.clock.now() < c.renewal.checkAgainAt)) return;
    this.#refreshing.add(c.name);
    void this.#refreshPlan(c)
      .catch(() => undefined) // #plan never throws; a failed save is asked again next time
      .finally(() => this.#refreshing.delete(c.name));
  }

  /** Renews every stored certificate of `names` that is due now; the names renewed. Failures are thrown together once all were tried. */
  async renewDue(names: string[]): Promise<string[]> {
    const renewed: string[] = [];
    const failed: string[] = [];
    for (const name of names) {
      const stored = this.#o.store.load(name);
      if (stored && this.#o.clock.now() < renewAt(await this.#refreshPlan(stored))) continue;
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

  /** Orders a new certificate for `name` now (the relay's AcmeIssuer, this agent's account store), saves it with its renewal plan and hands it to onCertificate. */
  async obtain(rawName: string): Promise<AgentCertificate> {
    const name = normalizeHost(rawName);
    const o = this.#o;
    const stored = o.store.load(name);
    const replaces = stored ? await this.#replaces(stored) : undefined;
    const issued = await this.#issuer.issue([name], { keyPem: o.keepKey ? stored?.keyPem : undefined, replaces });
    const cert: AgentCertificate = { name, chainPem: issued.chainPem, keyPem: issued.keyPem, issuer: issued.issuer, notBefore: issued.notBefore, notAfter: issued.notAfter };
    cert.renewal = await this.#plan(cert);
    o.store.save(cert);
    o.onCertificate?.(cert);
    return cert;
  }

  /** The ARI id of `previous` for the new order's `replaces`: only for a certificate from this CA, and only when it offers ARI. */
  async #replaces(previous: AgentCertificate): Promise<string | undefined> {
    if (previous.issuer !== `acme:${this.directoryUrl}`) return undefined;
    try {
      return (await renewalInfoUrl(this.directoryUrl)) ? ariCertId(previous.chainPem) : undefined;
    } catch {
      return undefined; // the order itself will say what is wrong with the CA
    }
  }

  /** `c` with a current plan: asked of the CA again (and stored) once its checkAgainAt has come, or when it has none. */
  async #refreshPlan(c: AgentCertificate): Promise<AgentCertificate> {
    if (c.renewal && this.#o.clock.now() < c.renewal.checkAgainAt) return c;
    const next = { ...c, renewal: await this.#plan(c, c.renewal) };
    this.#o.store.save(next);
    return next;
  }

  /** When to renew `cert`: a time in the CA's ARI window where it offers one, else 2/3 of the lifetime. Never throws. */
  async #plan(cert: AgentCertificate, previous?: RenewalPlan): Promise<RenewalPlan> {
    const now = this.#o.clock.now();
    const lifetime = { at: renewalDueAt(cert), source: 'lifetime' as const };
    let w: Awaited<ReturnType<typeof fetchRenewalWindow>>;
    try {
      w = await fetchRenewalWindow(this.directoryUrl, cert.chainPem, now);
    } catch {
      // The CA's last word stands if there was one; ask again within the hour.
      return { ...(previous?.source === 'ari' ? previous : lifetime), checkAgainAt: now + ARI_POLL.afterFailureMs };
    }
    if (!w) return { ...lifetime, checkAgainAt: now + ARI_POLL.maxMs };
    const checkAgainAt = now + Math.min(ARI_POLL.maxMs, Math.max(ARI_POLL.minMs, w.checkAgainAt !== undefined ? w.checkAgainAt - now : ARI_POLL.defaultMs));
    // RFC 9773 section 4.2: pick once per window, not on every ask.
    if (previous?.source === 'ari' && previous.window?.start === w.start && previous.window.end === w.end) return { ...previous, checkAgainAt };
    const from = Math.max(w.start, now);
    const at = w.end <= from ? now : Math.floor(from + Math.random() * (w.end - from));
    return { at, source: 'ari', window: { start: w.start, end: w.end }, checkAgainAt };
  }
}
