import { connect } from 'node:tls';
import { systemClock, type Clock } from '../lib/clock.ts';
import { errorMessage } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { Logger } from '../lib/logger.ts';
import { certInfo } from './issuer.ts';
import type { CertStorage } from './storage.ts';

// The drift probe (seed 001): on an interval, connect to the relay's own TLS listener for each
// stored certificate's name and compare what is actually served with what storage says is
// current. Each result goes to `record` (for a custom domain: tls_last_checked_at,
// tls_not_after as served, tls_last_error; src/domains/cert-lifecycle.ts probeRecorder).

export interface CertProbeOptions {
  storage: CertStorage;
  /** Keeps each result; an error it throws fails the run. */
  record?: (result: ProbeResult, now: number) => Promise<void>;
  /** The relay's TLS listener. */
  target: { host: string; port: number };
  /** CA(s) the served chain must verify against; without, only drift and expiry are checked. */
  ca?: string | string[];
  /** The servername to probe a certificate with (default: `*.d` → `tunn-probe.d`). */
  probeName?: (certName: string) => string;
  clock?: Clock;
  logger?: Logger;
  intervalMs?: number;
  timeoutMs?: number;
}

export interface ProbeResult {
  name: string;
  servername: string;
  ok: boolean;
  /** The served leaf differs from the stored current certificate. */
  drift: boolean;
  servedNotAfter?: string;
  error?: string;
}

export class CertProbe {
  readonly #o: CertProbeOptions;
  #timer?: NodeJS.Timeout;

  constructor(opts: CertProbeOptions) {
    this.#o = opts;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.runOnce().catch((err) => this.#o.logger?.error({ err: errorMessage(err) }, 'certificate probe failed')), this.#o.intervalMs ?? 15 * 60_000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async runOnce(): Promise<ProbeResult[]> {
    const out: ProbeResult[] = [];
    for (const c of await this.#o.storage.list()) {
      const stored = await this.#o.storage.load(c.name);
      if (!stored) continue;
      const servername = (this.#o.probeName ?? defaultProbeName)(c.name);
      const r = await this.#probe(servername, certInfo(stored.chainPem).fingerprint, c.name);
      out.push(r);
      await this.#o.record?.(r, (this.#o.clock ?? systemClock).now());
    }
    return out;
  }

  async #probe(servername: string, expected: string, name: string): Promise<ProbeResult> {
    const { host, port } = this.#o.target;
    return new Promise((resolve) => {
      const sock = connect({ host, port, servername, ca: this.#o.ca, rejectUnauthorized: false, timeout: this.#o.timeoutMs ?? 5000 });
      const done = (r: ProbeResult) => {
        sock.destroy();
        resolve(r);
      };
      sock.on('timeout', () => done({ name, servername, ok: false, drift: false, error: `no TLS answer from ${host}:${port} for ${servername} within the timeout` }));
      sock.on('error', (err) => done({ name, servername, ok: false, drift: false, error: `TLS handshake for ${servername} failed: ${err.message}` }));
      sock.on('secureConnect', () => {
        const peer = sock.getPeerCertificate();
        const servedNotAfter = peer.valid_to ? nowIso(Date.parse(peer.valid_to)) : undefined;
        const drift = peer.fingerprint256 !== expected;
        let error: string | undefined;
        if (drift) error = `serving a certificate (${peer.fingerprint256?.slice(0, 23)}…) that is not the current one in the store (${expected.slice(0, 23)}…)`;
        else if (this.#o.ca && !sock.authorized) error = `served certificate does not verify: ${String(sock.authorizationError)}`;
        else if (servedNotAfter && Date.parse(servedNotAfter) <= (this.#o.clock ?? systemClock).now()) error = `served certificate expired at ${servedNotAfter}`;
        done({ name, servername, ok: !error, drift, servedNotAfter, error });
      });
    });
  }
}

export function defaultProbeName(certName: string): string {
  return certName.startsWith('*.') ? `tunn-probe.${certName.slice(2)}` : certName;
}
