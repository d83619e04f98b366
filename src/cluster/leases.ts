import { sql, type Transaction } from 'kysely';
import { TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import { nowIso } from '../lib/ids.ts';
import type { Database, TunnelLeasesTable } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { DEFAULT_LEASE_TTL_MS } from './nodes.ts';

// Tunnel location as lease rows: one per (host, node, agent session), with an expiry a few
// seconds ahead that the holding node renews with its heartbeat. A node that stops renewing
// (killed, partitioned) is gone for routing when its leases expire; nobody has to notice it
// died. Several rows per host are normal: an agent keeps sessions on two relays, and each
// relay holds a lease for its session. The same table serves a single relay on SQLite.
//
// How it backs the relay's TunnelDirectory (src/relay/tunnel-directory.ts, issue 10): the
// directory keeps answering lookups from memory; `attach` → acquire (its `replaced` are the
// holders to tell "replaced"), `detach`/`detachTunnel` → release, the heartbeat → renew (a
// lease missing from its answer was taken over elsewhere: tell that session "replaced"), and
// "where else is this host served?" for forwarding → holders. See src/cluster/PHASE2.md.

/** PostgreSQL NOTIFY channel told the host of every lease change (phase 2 LISTENs on it). */
export const LEASE_CHANNEL = 'tunn_leases';

/**
 * What other relays do with a visitor of the tunnel (src/cluster/lease-kinds.ts):
 * `tls`: a public `tunn tls` raw passthrough (SNI routed raw to the holder, never decrypted);
 * `tls-tcp`: a public `tunn tls --backend tcp` (TLS ends at the relay the visitor reached, the
 * plain bytes are carried as link kind tcp); `tls-private`: a `tunn tls` without --public (no SNI
 * route: HTTP to it is carried to the holder, which answers 426; `tunn connect` reaches it);
 * `tls-at-agent`: an http tunnel whose TLS ends at its agent now (SNI routed raw, never decrypted);
 * `tls-tcp-at-agent`: a public `tunn tls --backend tcp --terminate-at agent` whose TLS ends at its
 * agent now (routed raw as `tls-at-agent`, and `tunn connect` reaches it as a tls tunnel).
 */
export type LeaseKind = 'http' | 'tcp' | 'udp' | 'tls' | 'tls-tcp' | 'tls-private' | 'tls-at-agent' | 'tls-tcp-at-agent';

export interface Lease {
  /** `name.domain`, normalised. */
  host: string;
  nodeId: string;
  /** The agent session on that node. */
  sessionId: string;
  /** Agent-side tunnel id. */
  tunnelId: string;
  name: string;
  accountId: string;
  agentId: string;
  kind: LeaseKind;
  /** The public port a tcp/udp tunnel holds, or null. */
  port: number | null;
  /** ms since the epoch. */
  since: number;
  expiresAt: number;
}

export type LeaseClaim = Omit<Lease, 'since' | 'expiresAt'>;

export interface AcquireResult {
  lease: Lease;
  /** Leases of another agent (same account) removed by this take-over: tell their sessions "replaced". */
  replaced: Lease[];
}

/**
 * Where tunnels are served. Contract for implementations:
 * - `acquire` is atomic per host (and per port) across every process sharing the table: two
 *   agents acquiring one host at once end with exactly one agent holding it.
 * - Expired leases count as absent everywhere (they may linger until `sweep`).
 * - Hosts are compared normalised (src/lib/host.ts).
 */
export interface LeaseTable {
  /**
   * Records that `claim.sessionId` on `claim.nodeId` serves `claim.host`. The same agent's
   * leases on other sessions or nodes stay (one agent, many sessions); another agent of the
   * same account loses the host (take-over: returned in `replaced`). A live lease of another
   * account is a CONFLICT (the names table decides who may hold a name, before this).
   */
  acquire(claim: LeaseClaim, now: number): Promise<AcquireResult>;
  /** Extends every lease of `nodeId`; returns those it still holds (any other was taken over). */
  renew(nodeId: string, now: number): Promise<Lease[]>;
  /** Drops the leases of one session (all its hosts, or one). */
  release(nodeId: string, sessionId: string, host?: string): Promise<void>;
  /** Drops every lease of a node (clean shutdown). */
  releaseNode(nodeId: string): Promise<void>;
  /** The live leases of `host`. */
  holders(host: string, now: number): Promise<Lease[]>;
  /** The live leases of a public port. */
  byPort(port: number, now: number): Promise<Lease[]>;
  /** Every live lease, by host. */
  all(now: number): Promise<Lease[]>;
  /** Deletes expired leases; returns how many. */
  sweep(now: number): Promise<number>;
}

type Row = TunnelLeasesTable;

function fromRow(r: Row): Lease {
  return {
    host: r.host,
    nodeId: r.node_id,
    sessionId: r.session_id,
    tunnelId: r.tunnel_id,
    name: r.name,
    accountId: r.account_id,
    agentId: r.agent_id,
    kind: r.kind as LeaseKind,
    port: r.port === null ? null : Number(r.port),
    since: Date.parse(r.since),
    expiresAt: Date.parse(r.expires_at),
  };
}

/** The lease table in the relay's store: PostgreSQL for a cluster, SQLite for one relay. */
export class StoreLeaseTable implements LeaseTable {
  readonly #store: Store;
  readonly ttlMs: number;

  constructor(o: { store: Store; ttlMs?: number }) {
    this.#store = o.store;
    this.ttlMs = o.ttlMs ?? DEFAULT_LEASE_TTL_MS;
  }

  async acquire(c: LeaseClaim, now: number): Promise<AcquireResult> {
    const host = normalizeHost(c.host);
    const live = nowIso(now);
    try {
      return await this.#store.db.transaction().execute(async (tx) => {
        await this.#lock(tx, `host:${host}`);
        if (c.port !== null) await this.#lock(tx, `port:${c.port}`);
        await tx.deleteFrom('tunnel_leases').where('host', '=', host).where('expires_at', '<=', live).execute();
        const held = (await tx.selectFrom('tunnel_leases').selectAll().where('host', '=', host).execute()).map(fromRow);
        const otherAccount = held.find((l) => l.accountId !== c.accountId);
        if (otherAccount) throw new TunnError('CONFLICT', `${host} is served by another account's tunnel (on relay ${otherAccount.nodeId}); choose another name`);
        if (c.port !== null) {
          const onPort = (await tx.selectFrom('tunnel_leases').selectAll().where('port', '=', c.port).where('host', '!=', host).where('expires_at', '>', live).execute()).map(fromRow);
          if (onPort.length) throw new TunnError('CONFLICT', `public port ${c.port} is held by ${onPort[0]!.host}; ask for another port`);
        }
        const replaced = held.filter((l) => l.agentId !== c.agentId);
        if (replaced.length) await tx.deleteFrom('tunnel_leases').where('host', '=', host).where('agent_id', '!=', c.agentId).execute();
        const mine = held.find((l) => l.nodeId === c.nodeId && l.sessionId === c.sessionId && l.agentId === c.agentId);
        const since = mine ? nowIso(mine.since) : live;
        const row: Row = {
          host,
          node_id: c.nodeId,
          session_id: c.sessionId,
          tunnel_id: c.tunnelId,
          name: c.name,
          account_id: c.accountId,
          agent_id: c.agentId,
          kind: c.kind,
          port: c.port,
          since,
          expires_at: nowIso(now + this.ttlMs),
        };
        await tx
          .insertInto('tunnel_leases')
          .values(row)
          .onConflict((oc) => oc.columns(['host', 'node_id', 'session_id']).doUpdateSet({ tunnel_id: row.tunnel_id, name: row.name, agent_id: row.agent_id, kind: row.kind, port: row.port, expires_at: row.expires_at }))
          .execute();
        await this.#notify(tx, host);
        return { lease: fromRow(row), replaced };
      });
    } catch (err) {
      if (err instanceof TunnError) throw err;
      throw new TunnError('UNAVAILABLE', `recording that ${host} is served here: ${(err as Error).message}`, { cause: err });
    }
  }

  async renew(nodeId: string, now: number): Promise<Lease[]> {
    const rows = await this.#store.db.updateTable('tunnel_leases').set({ expires_at: nowIso(now + this.ttlMs) }).where('node_id', '=', nodeId).returningAll().execute();
    return rows.map(fromRow);
  }

  async release(nodeId: string, sessionId: string, host?: string): Promise<void> {
    await this.#store.db.transaction().execute(async (tx) => {
      let q = tx.deleteFrom('tunnel_leases').where('node_id', '=', nodeId).where('session_id', '=', sessionId);
      if (host !== undefined) q = q.where('host', '=', normalizeHost(host));
      const gone = await q.returning('host').execute();
      for (const h of new Set(gone.map((r) => r.host))) await this.#notify(tx, h);
    });
  }

  async releaseNode(nodeId: string): Promise<void> {
    await this.#store.db.deleteFrom('tunnel_leases').where('node_id', '=', nodeId).execute();
  }

  async holders(host: string, now: number): Promise<Lease[]> {
    const rows = await this.#store.db.selectFrom('tunnel_leases').selectAll().where('host', '=', normalizeHost(host)).where('expires_at', '>', nowIso(now)).orderBy('since').orderBy('node_id').execute();
    return rows.map(fromRow);
  }

  async byPort(port: number, now: number): Promise<Lease[]> {
    const rows = await this.#store.db.selectFrom('tunnel_leases').selectAll().where('port', '=', port).where('expires_at', '>', nowIso(now)).orderBy('since').execute();
    return rows.map(fromRow);
  }

  async all(now: number): Promise<Lease[]> {
    const rows = await this.#store.db.selectFrom('tunnel_leases').selectAll().where('expires_at', '>', nowIso(now)).orderBy('host').orderBy('node_id').orderBy('session_id').execute();
    return rows.map(fromRow);
  }

  async sweep(now: number): Promise<number> {
    const r = await this.#store.db.deleteFrom('tunnel_leases').where('expires_at', '<=', nowIso(now)).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /**
   * Serialises acquisitions of one key across processes: a PostgreSQL advisory lock held to
   * the end of the transaction. SQLite needs none: its relay has one connection, and Kysely
   * runs one transaction on it at a time.
   */
  async #lock(tx: Transaction<Database>, key: string): Promise<void> {
    if (this.#store.dialect !== 'postgres') return;
    await sql`select pg_advisory_xact_lock(hashtextextended(${'tunn-lease:' + key}, 0))`.execute(tx);
  }

  async #notify(tx: Transaction<Database>, host: string): Promise<void> {
    if (this.#store.dialect !== 'postgres') return;
    await sql`select pg_notify(${LEASE_CHANNEL}, ${host})`.execute(tx);
  }
}
