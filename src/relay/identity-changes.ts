import { errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';

// A cluster's relays hear at once when who may do what changed anywhere (issue 14: group edits,
// revocations, domain shares, signing-key rotation, tunnel policy within 2 s): PostgreSQL
// triggers (migration 0010) NOTIFY `tunn_identity` with the table changed, whoever changed it
// (another relay, the CLI, psql). On each, this relay drops the caches that could hold the old
// answer, reloads its signing keys when they changed, and re-checks its live connections and
// agent sessions at once (a live-revocation pass started after the change). Notifications that
// arrive together are handled once. The periodic re-reads stay as the safety net (the sweep
// every 2 s, the 2 s group cache, the key reload): a notification sent while the listener was
// deaf is lost, and the listener's reconnection asks for everything (`*`).

export interface IdentityChangeTargets {
  logger: Logger;
  /** Reload the signing keys (signing_keys changed). */
  reloadKeys(): Promise<void>;
  /** Drop the group and grant caches. */
  forgetCaches(): void;
  /** A live-revocation pass that starts after the change. */
  sweep(): Promise<unknown>;
}

const KEY_TABLES = new Set(['signing_keys', '*']);

export class IdentityChanges {
  readonly #o: IdentityChangeTargets;
  #pending = new Set<string>();
  #running: Promise<void> | undefined;

  constructor(o: IdentityChangeTargets) {
    this.#o = o;
  }

  /** A NOTIFY for `table` (or `*`): handled soon, together with any other that comes meanwhile. */
  changed(table: string): void {
    this.#pending.add(table);
    this.#running ??= this.#drain().finally(() => {
      this.#running = undefined;
      if (this.#pending.size) this.changed([...this.#pending][0]!);
    });
  }

  /** Resolves once the changes heard so far are applied (tests). */
  async settled(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #drain(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    const tables = [...this.#pending];
    this.#pending.clear();
    try {
      this.#o.forgetCaches();
      if (tables.some((t) => KEY_TABLES.has(t))) await this.#o.reloadKeys();
      await this.#o.sweep();
      this.#o.logger.debug({ event: 'identity_changed', tables }, 'identity or policy changed in the cluster: caches dropped, live connections re-checked');
    } catch (err) {
      this.#o.logger.warn({ event: 'identity_change_failed', tables, err: errorMessage(err) }, 'applying an identity change heard from the database failed: the periodic re-check catches up');
    }
  }
}
