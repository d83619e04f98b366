import { join } from 'node:path';
import { clusterStatus, type ClusterStatus } from '../cluster/status.ts';
import { fromEnv, resolveSecretLayer } from '../config/config.ts';
import { systemClock, type Clock } from '../lib/clock.ts';
import { errorMessage, TunnError } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import { openStore } from '../store/store.ts';
import { printJson } from './output.ts';
import { relayDataDir } from './run-token.ts';
import { ago, formatTable } from './table.ts';

// `tunn relay status`: the relays of a cluster and where each tunnel is served, read from the
// database they share (--store, --store-file, TUNN_STORE, or the data dir's SQLite file).

interface StatusFlags {
  store?: string;
  storeFile?: string;
  dataDir?: string;
  dev?: boolean;
  json?: boolean;
}

/** The database URL the operator named (flags before the environment), or the data dir's SQLite file. */
export function statusStoreUrl(flags: StatusFlags, env: NodeJS.ProcessEnv): string {
  const given = resolveSecretLayer({ store: flags.store, storeFile: flags.storeFile }).store ?? resolveSecretLayer(fromEnv(['store'], env)).store;
  if (typeof given === 'string') return given;
  return join(relayDataDir(flags, env), 'tunn.db');
}

/** The database's address without its credentials. */
function where(url: string): string {
  try {
    const u = new URL(url);
    if (u.protocol.startsWith('postgres')) return `at ${u.host}${u.pathname}`;
  } catch {
    // a file path
  }
  return url;
}

const inFuture = (ms: number, now: number): string => `in ${Math.max(0, Math.round((ms - now) / 1000))}s`;

export function formatStatus(s: ClusterStatus, now: number): string {
  if (!s.nodes.length && !s.leases.length) return 'no relay has joined a cluster on this database (relays appear here when they run with --node-url and a postgres:// --store)\n';
  const alive = s.nodes.filter((n) => n.alive).length;
  let out = `${alive} of ${s.nodes.length} relay${s.nodes.length === 1 ? '' : 's'} alive\n\n`;
  out += formatTable(
    ['NODE', 'URL', 'ALIVE', 'SINCE', 'LAST SEEN', 'AGENTS', 'TUNNELS', 'VERSION'],
    s.nodes.map((n) => [n.id, n.url, n.alive ? 'yes' : 'no', ago(nowIso(n.startedAt), now), ago(nowIso(n.lastSeenAt), now), String(n.agents), String(n.tunnels), n.version]),
  );
  out += `\n${s.leases.length} lease${s.leases.length === 1 ? '' : 's'}\n`;
  if (s.leases.length) {
    out += formatTable(
      ['HOST', 'NODE', 'SESSION', 'AGENT', 'KIND', 'PORT', 'SINCE', 'EXPIRES'],
      s.leases.map((l) => [l.host, l.nodeId, l.sessionId, l.agentId, l.kind, l.port === null ? '-' : String(l.port), ago(nowIso(l.since), now), inFuture(l.expiresAt, now)]),
    );
  }
  return out;
}

export async function runRelayStatus(flags: StatusFlags, clock: Clock = systemClock, out: { write(s: string): unknown } = process.stdout): Promise<void> {
  const url = statusStoreUrl(flags, process.env);
  const store = await openStore(url).catch((err: unknown) => {
    throw new TunnError('UNAVAILABLE', `reading the cluster status from the database ${where(url)}: ${errorMessage(err)}; check --store (or --store-file, TUNN_STORE) and that the database is running`, { cause: err });
  });
  try {
    const s = await clusterStatus(store, clock);
    if (flags.json) {
      printJson(
        {
          event: 'cluster_status',
          nodes: s.nodes.map((n) => ({ ...n, startedAt: nowIso(n.startedAt), lastSeenAt: nowIso(n.lastSeenAt) })),
          leases: s.leases.map((l) => ({ ...l, since: nowIso(l.since), expiresAt: nowIso(l.expiresAt) })),
        },
        out,
      );
    } else out.write(formatStatus(s, clock.now()));
  } finally {
    await store.close();
  }
}
