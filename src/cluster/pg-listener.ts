import type { Client } from 'pg';
import { errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { ClusterCounters } from './metrics.ts';

// LISTEN on PostgreSQL channels over one dedicated connection (not the pool's: a pooled
// connection is handed to other queries), reconnecting by itself with a growing pause when the
// database restarts or the network drops. Notifications are a fast path only: whoever listens
// also re-reads periodically (the heartbeat), since a notification sent while this connection
// was down is lost.

export interface PgListenerOptions {
  url: string;
  channels: string[];
  onNotify(channel: string, payload: string): void;
  /** Called after each (re)connection: re-read whatever may have changed while deaf. */
  onConnect?(): void;
  logger: Logger;
  /** First pause before reconnecting: 200 ms, doubling up to 5 s. */
  retryMs?: number;
  counters?: ClusterCounters;
}

export class PgListener {
  readonly #o: PgListenerOptions;
  #client: Client | undefined;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #pause: number;
  #connected: Promise<void> | undefined;
  /** Between losing the connection and having it back (its first failure counts the outage). */
  #down = false;

  constructor(o: PgListenerOptions) {
    for (const c of o.channels) if (!/^[a-z_][a-z0-9_]*$/.test(c)) throw new TypeError(`channel name ${c}: use a-z, 0-9 and _`);
    this.#o = o;
    this.#pause = o.retryMs ?? 200;
  }

  /** Connects and listens; resolves once listening (the first time), rejects if the first attempt fails (retrying continues). */
  start(): Promise<void> {
    this.#connected ??= this.#connect();
    return this.#connected;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#client?.end().catch(() => {});
  }

  async #connect(): Promise<void> {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: this.#o.url, keepAlive: true, connectionTimeoutMillis: 10_000 });
    this.#client = client;
    let lost = false;
    const onLost = (err?: Error) => {
      if (lost || this.#closed) return;
      lost = true;
      // Said once per outage, not once per failed attempt to reconnect.
      if (!this.#down) {
        this.#down = true;
        if (this.#o.counters) this.#o.counters.listenLost++;
        this.#o.logger.warn({ event: 'cluster_listen_lost', err: err ? errorMessage(err) : 'connection ended' }, 'lost the database connection that listens for cluster changes: reconnecting');
      }
      client.end().catch(() => {});
      this.#retry();
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', (n) => {
      if (n.payload !== undefined) this.#o.onNotify(n.channel, n.payload);
    });
    try {
      await client.connect();
      for (const c of this.#o.channels) await client.query(`LISTEN ${c}`);
    } catch (err) {
      onLost(err as Error);
      throw err;
    }
    this.#pause = this.#o.retryMs ?? 200;
    if (this.#down) {
      this.#down = false;
      if (this.#o.counters) this.#o.counters.listenBack++;
      this.#o.logger.info({ event: 'cluster_listen_back' }, 'listening for cluster changes again');
    }
    this.#o.onConnect?.();
  }

  #retry(): void {
    if (this.#closed) return;
    const pause = this.#pause;
    this.#pause = Math.min(this.#pause * 2, 5000);
    this.#timer = setTimeout(() => {
      this.#connect().catch(() => {});
    }, pause);
    this.#timer.unref();
  }
}
