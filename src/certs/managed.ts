import type { CertDecision } from './decision.ts';
import type { StoredCertificate } from './storage.ts';

// Names a server must always have a certificate for (the relay's own), each kept by a
// background loop (certmagic's ManageAsync): obtain; after a failure wait for the retry time
// the manager recorded, or for a wake-up (a certificate issued elsewhere, a retry asked for,
// a maintenance pass, stop), and try again, until a certificate is served. A CA that is down
// when the server starts then delays that certificate without stopping the server.

/** What manage() answers at once: whether a certificate is there, and when one will be. */
export interface ManagedCertificate {
  /** The certificate's key name (`*.tunn.example.com`). */
  name: string;
  /** A valid certificate was in memory or storage (no network involved). */
  ready: boolean;
  /** Resolves with the certificate once one is served (at once when ready); undefined if the manager stops first. */
  arrived: Promise<StoredCertificate | undefined>;
}

/** What the loops need from the certificate manager. */
export interface ManagedNamesHost {
  /** The valid certificate served under the key name now, if any (memory or storage). */
  valid(name: string): Promise<StoredCertificate | undefined>;
  /** Orders now when the back-off allows (sharing an order in flight): the certificate, undefined while waiting; rejects on failure (recorded). */
  tryObtain(d: CertDecision): Promise<StoredCertificate | undefined>;
  /** How long until the next attempt may start; undefined: only when woken (manual policy). */
  waitMs(d: CertDecision): Promise<number | undefined>;
}

export class ManagedNames {
  readonly #host: ManagedNamesHost;
  readonly #names = new Map<string, CertDecision>();
  readonly #wakers = new Set<() => void>();
  #stopped = false;

  constructor(host: ManagedNamesHost) {
    this.#host = host;
  }

  /** Keeps a certificate for `d` from now on; the answer comes without contacting the CA. */
  async add(d: CertDecision): Promise<ManagedCertificate> {
    this.#names.set(d.name, d);
    const cert = await this.#host.valid(d.name);
    if (cert) return { name: d.name, ready: true, arrived: Promise.resolve(cert) };
    return { name: d.name, ready: false, arrived: this.#keepTrying(d) };
  }

  /** Managed names without a valid certificate now (the maintenance pass retries them when due). */
  async missing(): Promise<CertDecision[]> {
    const out: CertDecision[] = [];
    for (const d of this.#names.values()) if (!(await this.#host.valid(d.name))) out.push(d);
    return out;
  }

  /** Something may have changed (an issuance, a retry asked for): waiting loops look again. */
  wake(): void {
    for (const w of [...this.#wakers]) w();
  }

  start(): void {
    this.#stopped = false;
  }

  /** Ends the loops; their `arrived` resolves with undefined. */
  stop(): void {
    this.#stopped = true;
    this.wake();
  }

  async #keepTrying(d: CertDecision): Promise<StoredCertificate | undefined> {
    while (!this.#stopped) {
      const have = await this.#host.valid(d.name);
      if (have) return have;
      try {
        const cert = await this.#host.tryObtain(d);
        if (cert) return cert;
      } catch {
        // Recorded by the manager (log, event, alert) with its retry time: wait for it below.
      }
      await this.#sleep(await this.#host.waitMs(d));
    }
    return undefined;
  }

  /** Waits `ms` (until woken when undefined); the timer never keeps the process alive. */
  #sleep(ms: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wakers.delete(done);
        resolve();
      };
      const timer = ms === undefined ? undefined : setTimeout(done, Math.max(50, ms));
      timer?.unref();
      this.#wakers.add(done);
    });
  }
}
