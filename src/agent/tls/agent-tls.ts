import { nameMatches, certInfo } from '../../certs/issuer.ts';
import type { Clock } from '../../lib/clock.ts';
import { errorMessage } from '../../lib/errors.ts';
import { normalizeHost } from '../../lib/host.ts';
import type { AgentAcme } from './acme-agent.ts';
import type { TlsContexts } from './contexts.ts';
import { spkiPin } from './pin.ts';

// Which names the agent terminates itself, and why not when it does not (issue 12, "Fallback
// and take-over"). For each name the agent gets a certificate (ACME, or --tls-cert files); once
// it has one, it serves it (TlsContexts) and reports `terminatedAt: agent` with not-after and
// pin; until then, or when issuance fails, it reports `relay` with the reason, and the relay
// keeps terminating (fallback). A failed name is tried again after `retryMs`; a served one is
// renewed when due (AgentAcme). Each change is reported once through onState: the agent prints
// it (`--json`: {"event":"tls",…}) and, in phase 2, sends it to the relay, which routes new
// connections to the agent from then on (connections already open stay where they are).

export interface TlsState {
  name: string;
  terminatedAt: 'agent' | 'relay';
  /** Why the relay terminates (fallback), or what went wrong with a renewal the agent will retry. */
  reason?: string;
  notAfter?: number;
  /** SPKI SHA-256 pin (base64) of the key served. */
  pin?: string;
}

export type CertificateSource = { kind: 'acme'; acme: AgentAcme } | { kind: 'files'; chainPem: string; keyPem: string };

export interface AgentTlsOptions {
  names: string[];
  contexts: TlsContexts;
  source: CertificateSource;
  clock: Clock;
  /** How long after a failure to try again (default 60 s). */
  retryMs?: number;
  onState?: (s: TlsState) => void;
}

export class AgentTls {
  readonly #o: AgentTlsOptions;
  readonly #states = new Map<string, TlsState>();
  readonly #retryAt = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  /** The tick running now, if any: ticks never overlap (two would order the same renewal twice). */
  #ticking: Promise<void> = Promise.resolve();

  constructor(opts: AgentTlsOptions) {
    this.#o = opts;
  }

  /** The current state of every name. */
  states(): TlsState[] {
    return [...this.#states.values()];
  }

  /** Gets (or loads) a certificate for every name; names that fail stay with the relay for now. */
  async start(): Promise<TlsState[]> {
    for (const n of this.#o.names) await this.#bring(normalizeHost(n));
    return this.states();
  }

  /** Retries failed names whose time has come and renews due certificates. Called by the timer, or by tests with a manual clock; a call during a tick runs after it. */
  tick(): Promise<void> {
    this.#ticking = this.#ticking.then(() => this.#tick());
    return this.#ticking;
  }

  async #tick(): Promise<void> {
    const now = this.#o.clock.now();
    for (const [name, s] of this.#states) {
      const due = s.terminatedAt === 'relay' || s.reason !== undefined ? (this.#retryAt.get(name) ?? 0) <= now : this.#o.source.kind === 'acme';
      if (due) await this.#bring(name);
    }
  }

  /** Runs tick() every `intervalMs` (unref'd: it never keeps the process alive). */
  startTimer(intervalMs = 60_000): void {
    this.#timer ??= setInterval(() => void this.tick(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #bring(name: string): Promise<void> {
    const now = this.#o.clock.now();
    try {
      const cert = this.#o.source.kind === 'acme' ? await this.#o.source.acme.ensure(name) : filesFor(name, this.#o.source, now);
      this.#o.contexts.set(name, cert);
      this.#retryAt.delete(name);
      this.#set({ name, terminatedAt: 'agent', notAfter: cert.notAfter, pin: spkiPin(cert.chainPem) });
    } catch (err) {
      this.#retryAt.set(name, now + (this.#o.retryMs ?? 60_000));
      const current = this.#states.get(name);
      // A renewal that failed while the served certificate is still good: keep serving it.
      if (current?.terminatedAt === 'agent' && current.notAfter !== undefined && current.notAfter > now) {
        this.#set({ ...current, reason: `renewal failed, retrying: ${errorMessage(err)}` });
        return;
      }
      this.#o.contexts.delete(name);
      this.#set({ name, terminatedAt: 'relay', reason: errorMessage(err) });
    }
  }

  #set(s: TlsState): void {
    const old = this.#states.get(s.name);
    this.#states.set(s.name, s);
    if (old && old.terminatedAt === s.terminatedAt && old.reason === s.reason && old.notAfter === s.notAfter && old.pin === s.pin) return;
    this.#o.onState?.(s);
  }
}

/** The --tls-cert files for `name`, if they cover it and are valid now. */
function filesFor(name: string, f: { chainPem: string; keyPem: string }, now: number): { chainPem: string; keyPem: string; notAfter: number } {
  const info = certInfo(f.chainPem);
  if (!info.names.some((p) => nameMatches(p, name))) throw new Error(`the certificate of --tls-cert is for ${info.names.join(', ') || 'no DNS name'}, not ${name}`);
  if (info.notAfter <= now) throw new Error(`the certificate of --tls-cert expired on ${new Date(info.notAfter).toISOString()}`);
  if (info.notBefore > now) throw new Error(`the certificate of --tls-cert is not valid before ${new Date(info.notBefore).toISOString()}`);
  return { ...f, notAfter: info.notAfter };
}
