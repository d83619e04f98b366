import type { Clock } from '../lib/clock.ts';
import { errorMessage, TunnError } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { Logger } from '../lib/logger.ts';
import type { Store } from '../store/store.ts';
import type { Dns01Provider } from './dns01-provider.ts';
import { normalizeName } from './zone.ts';
import type { RelayZone } from './relay-zone.ts';

// The relay zone's ACME TXT values in a cluster: every relay's DNS server answers for the zone
// (DNS has every relay's address), so a value one relay presents (its wildcard, an agent's
// DNS-01) is written to the shared database and each relay copies the rows into its zone,
// re-read every `syncMs`. waitVisible waits for two re-reads: by then every live relay has it.

export interface SharedTxtOptions {
  zone: RelayZone;
  store: Store;
  clock: Clock;
  logger: Logger;
  /** Re-read period (default 1 s). */
  syncMs?: number;
}

export class SharedTxt implements Dns01Provider {
  readonly label = "the relays' DNS servers";
  readonly #o: SharedTxtOptions;
  /** `name\0value` copied into the zone from the database. */
  #copied = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #failing = false;

  constructor(o: SharedTxtOptions) {
    this.#o = o;
  }

  get zone(): string {
    return this.#o.zone.zone;
  }

  async present(name: string, value: string): Promise<void> {
    const n = normalizeName(name);
    try {
      await this.#o.store.db.insertInto('acme_txt').values({ name: n, value, created_at: nowIso(this.#o.clock.now()) }).onConflict((oc) => oc.doNothing()).execute();
    } catch (err) {
      throw new TunnError('UNAVAILABLE', `writing the ACME TXT record ${n} to the database shared by the relays: ${errorMessage(err)}`, { cause: err });
    }
    await this.#o.zone.present(n, value);
    this.#copied.add(`${n}\0${value}`);
  }

  async cleanup(name: string, value: string): Promise<void> {
    const n = normalizeName(name);
    await this.#o.store.db.deleteFrom('acme_txt').where('name', '=', n).where('value', '=', value).execute();
    this.#copied.delete(`${n}\0${value}`);
    await this.#o.zone.cleanup(n, value);
  }

  async waitVisible(): Promise<void> {
    const ms = this.#o.syncMs ?? 1000;
    await new Promise((r) => setTimeout(r, 2 * ms + 100));
  }

  /** Copies the database's TXT values into the zone, and drops the copied ones that are gone. */
  async sync(): Promise<void> {
    try {
      const rows = await this.#o.store.db.selectFrom('acme_txt').select(['name', 'value']).execute();
      const now = new Set(rows.map((r) => `${r.name}\0${r.value}`));
      for (const key of this.#copied) {
        if (now.has(key)) continue;
        const [name, value] = key.split('\0') as [string, string];
        this.#o.zone.remove(name, 'TXT', value);
        this.#copied.delete(key);
      }
      for (const r of rows) {
        const key = `${r.name}\0${r.value}`;
        if (this.#copied.has(key)) continue;
        this.#o.zone.add({ name: r.name, type: 'TXT', value: r.value, ttl: 0 });
        this.#copied.add(key);
      }
      if (this.#failing) this.#o.logger.info({ event: 'acme_txt_back' }, 'reading the shared ACME TXT records again');
      this.#failing = false;
    } catch (err) {
      // Once per outage; the values already copied stay answered.
      if (!this.#failing) this.#o.logger.warn({ event: 'acme_txt_stale', err: errorMessage(err) }, 'cannot read the shared ACME TXT records: answering the last ones read');
      this.#failing = true;
    }
  }

  async start(): Promise<void> {
    await this.sync();
    this.#timer = setInterval(() => void this.sync(), this.#o.syncMs ?? 1000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
