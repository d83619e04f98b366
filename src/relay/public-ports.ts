import { systemClock, type Clock } from '../lib/clock.ts';
import { TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import { nowIso } from '../lib/ids.ts';
import { formatPortRange, type PortRange } from '../lib/port-range.ts';
import type { Store } from '../store/store.ts';

// Public TCP and UDP ports (`tunn tcp 25565 -n mc --public` → tcp://relay:20007): handed out from
// the operator's ranges (--tcp-ports, --udp-ports), one per (protocol, tunnel name), stored so a
// name keeps its port across agent reconnects and relay restarts, as the name itself is kept.
// The relay's own ports are never handed out, an account holds at most `perAccount` ports, and
// a full range frees the port of the name least recently used, if that was long enough ago.

export type PortProtocol = 'tcp' | 'udp';

export interface PublicPortsConfig {
  tcp?: PortRange;
  udp?: PortRange;
  /** Ports the relay listens on itself (HTTPS, HTTP, DNS, metrics…), per protocol: never handed out. */
  reserved: Partial<Record<PortProtocol, readonly number[]>>;
  /** Public ports one account may hold, TCP and UDP together (default 5). */
  perAccount?: number;
  /** A full range takes back a port whose name was last used this long ago (default 30 days). */
  reclaimAfterMs?: number;
}

export interface PortHolder {
  protocol: PortProtocol;
  port: number;
  domain: string;
  name: string;
  accountId: string;
}

const FLAG: Record<PortProtocol, string> = { tcp: '--tcp-ports', udp: '--udp-ports' };
const DAY = 86_400_000;

export class PublicPorts {
  readonly #store: Store;
  readonly #c: PublicPortsConfig;
  readonly #clock: Clock;

  constructor(store: Store, config: PublicPortsConfig, clock: Clock = systemClock) {
    this.#store = store;
    this.#c = config;
    this.#clock = clock;
  }

  /** Whether this relay hands out ports of `protocol` at all. */
  enabled(protocol: PortProtocol): boolean {
    return this.#c[protocol] !== undefined;
  }

  /**
   * The port of (protocol, domain, name): the one it held before if that is still in the range,
   * else a new one. `isLive` says whether a name is in use right now (its port is never taken back).
   */
  async assign(h: Omit<PortHolder, 'port'>, isLive: (domain: string, name: string) => boolean = () => false): Promise<number> {
    const range = this.#c[h.protocol];
    const protocolWord = h.protocol.toUpperCase();
    if (!range) throw new TunnError('FORBIDDEN', `this relay has no public ${protocolWord} ports: its operator turns them on with \`tunn relay ${FLAG[h.protocol]} LOW-HIGH\` (or reach the tunnel privately through \`tunn connect\`, without --public)`);
    const domain = normalizeHost(h.domain);
    const name = normalizeHost(h.name);
    const ts = nowIso(this.#clock.now());
    const db = this.#store.db;
    const held = await db.selectFrom('public_ports').selectAll().where('protocol', '=', h.protocol).where('domain', '=', domain).where('name', '=', name).executeTakeFirst();
    if (held) {
      if (held.account_id !== h.accountId) throw new TunnError('NAME_TAKEN', `the name "${name}" belongs to another account; choose another with -n`);
      if (this.#usable(h.protocol, held.port)) {
        await db.updateTable('public_ports').set({ last_used_at: ts }).where('protocol', '=', h.protocol).where('port', '=', held.port).execute();
        return held.port;
      }
      // The operator narrowed the range (or the relay now listens there itself): a new port.
      await db.deleteFrom('public_ports').where('protocol', '=', h.protocol).where('port', '=', held.port).execute();
    }
    const mine = await db.selectFrom('public_ports').select(['protocol', 'name', 'port']).where('account_id', '=', h.accountId).execute();
    const quota = this.#c.perAccount ?? 5;
    if (mine.length >= quota) {
      const list = mine.map((r) => `${r.name} (${r.protocol} ${r.port})`).join(', ');
      throw new TunnError('FORBIDDEN', `your account holds ${mine.length} public ports, this relay's limit: ${list}. A name's port is freed after ${Math.round((this.#c.reclaimAfterMs ?? 30 * DAY) / DAY)} days unused when the range runs out; reuse one of these names, or reach the tunnel privately through \`tunn connect\``);
    }
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await this.#freePort(h.protocol, range, isLive);
      if (port === undefined) {
        throw new TunnError('UNAVAILABLE', `all public ${protocolWord} ports of this relay (${formatPortRange(range)}) are taken: ask its operator for a larger ${FLAG[h.protocol]} range`);
      }
      try {
        await db.insertInto('public_ports').values({ protocol: h.protocol, port, domain, name, account_id: h.accountId, created_at: ts, last_used_at: ts }).execute();
        return port;
      } catch (err) {
        // Another relay of the cluster (or a concurrent registration) took that port or name first.
        const again = await db.selectFrom('public_ports').selectAll().where('protocol', '=', h.protocol).where('domain', '=', domain).where('name', '=', name).executeTakeFirst();
        if (again) return this.assign(h, isLive);
        if (attempt === 4) throw new TunnError('UNAVAILABLE', `assigning a public ${protocolWord} port to ${name}: ${(err as Error).message}`, { cause: err });
      }
    }
    throw new TypeError('unreachable');
  }

  /** Who holds `port` (the stored assignment; whether that tunnel is live is the directory's question). */
  async holder(protocol: PortProtocol, port: number): Promise<PortHolder | undefined> {
    const r = await this.#store.db.selectFrom('public_ports').selectAll().where('protocol', '=', protocol).where('port', '=', port).executeTakeFirst();
    return r && { protocol, port: r.port, domain: r.domain, name: r.name, accountId: r.account_id };
  }

  /** Gives a name's port back (the name is deleted, or its owner asked). */
  async release(protocol: PortProtocol, domain: string, name: string): Promise<void> {
    await this.#store.db.deleteFrom('public_ports').where('protocol', '=', protocol).where('domain', '=', normalizeHost(domain)).where('name', '=', normalizeHost(name)).execute();
  }

  #usable(protocol: PortProtocol, port: number): boolean {
    const r = this.#c[protocol];
    return r !== undefined && port >= r.low && port <= r.high && !(this.#c.reserved[protocol] ?? []).includes(port);
  }

  async #freePort(protocol: PortProtocol, range: PortRange, isLive: (domain: string, name: string) => boolean): Promise<number | undefined> {
    const rows = await this.#store.db.selectFrom('public_ports').select(['port', 'domain', 'name', 'last_used_at']).where('protocol', '=', protocol).where('port', '>=', range.low).where('port', '<=', range.high).orderBy('last_used_at').execute();
    const taken = new Set(rows.map((r) => r.port));
    for (let p = range.low; p <= range.high; p++) if (!taken.has(p) && this.#usable(protocol, p)) return p;
    const before = nowIso(this.#clock.now() - (this.#c.reclaimAfterMs ?? 30 * DAY));
    const stale = rows.find((r) => r.last_used_at < before && this.#usable(protocol, r.port) && !isLive(r.domain, r.name));
    if (!stale) return undefined;
    await this.#store.db.deleteFrom('public_ports').where('protocol', '=', protocol).where('port', '=', stale.port).where('last_used_at', '=', stale.last_used_at).execute();
    return stale.port;
  }
}
