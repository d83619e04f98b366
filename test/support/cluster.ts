import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCli, startRelay, type RelayHandle } from '../e2e/harness.ts';
import { freePort } from './ports.ts';
import { startPostgres, type Postgres } from './postgres.ts';

// N relays (real processes) on one throwaway PostgreSQL database, as the cluster e2e files
// start them: one sealing key (TUNN_SECRET_KEY) and one cluster secret file for all, each with
// its own --node-url on a free loopback port, started one after another (the first creates the
// schema and the sealing canary). Secrets go in files and the environment, never on command lines.
// startClusterDatabase is the same without the relays, for files that start theirs their own way
// (not --dev: with Pebble, their own certificate, fixed shared ports).

/** A cluster's shared parts without its relays: for tests that start relays their own way (with Pebble, say). */
export interface ClusterDatabase {
  pg: Postgres;
  dir: string;
  /** The postgres:// URL (for a test's own openStore). */
  storeUrl: string;
  /** Holds storeUrl (--store-file). */
  storeFile: string;
  secretFile: string;
  /** The relays' environment (TUNN_SECRET_KEY and the caller's additions). */
  env: NodeJS.ProcessEnv;
  /** A new agent/PAT token for `email` (`tunn relay token create` on the database). */
  token(email: string): Promise<string>;
  /** The same, written to a 0600 file (for --token-file). */
  tokenFile(email: string): Promise<string>;
  /** Stops the database and removes the folder (the caller stops its relays first). */
  stop(): Promise<void>;
}

export interface TestCluster extends ClusterDatabase {
  relays: RelayHandle[];
  /** Each relay's --node-url. */
  nodeUrls: Map<RelayHandle, string>;
  /** Stops the relays, then the database. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  relays: number;
  prefix?: string;
  /** Added to the relays' environment. */
  env?: NodeJS.ProcessEnv;
  /** Arguments every relay gets. */
  extra?: string[];
  /** Relay i listens on hosts[i] (`--listen`, and its --node-url there), so relays can bind the same ports; 127.0.0.1 by default. */
  hosts?: string[];
}

/** A throwaway PostgreSQL database with a folder, the sealing key and the cluster secret file. */
export async function startClusterDatabase(o: Pick<ClusterOptions, 'prefix' | 'env'> = {}): Promise<ClusterDatabase> {
  const pg = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), o.prefix ?? 'tunn-e2e-cluster-'));
  const storeFile = join(dir, 'store-url');
  const secretFile = join(dir, 'cluster.key');
  const env = { TUNN_SECRET_KEY: randomBytes(32).toString('hex'), ...o.env };
  let files = 0;
  const db: ClusterDatabase = {
    pg, dir, storeUrl: '', storeFile, secretFile, env,
    async token(email) {
      const p = startCli(['relay', 'token', 'create', '--email', email, '--store-file', storeFile, '--data-dir', join(dir, 'token'), '--json'], { env });
      const line = await p.waitFor((l) => l.event === 'token');
      await p.exited;
      return String(line.token);
    },
    async tokenFile(email) {
      const f = join(dir, `token-${++files}`);
      writeFileSync(f, (await db.token(email)) + '\n', { mode: 0o600 });
      return f;
    },
    async stop() {
      await pg.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    db.storeUrl = await pg.createDatabase();
    writeFileSync(storeFile, db.storeUrl + '\n', { mode: 0o600 });
    writeFileSync(secretFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  } catch (err) {
    await db.stop().catch(() => {});
    throw err;
  }
  return db;
}

export async function startCluster(o: ClusterOptions): Promise<TestCluster> {
  const db = await startClusterDatabase(o);
  const relays: RelayHandle[] = [];
  const nodeUrls = new Map<RelayHandle, string>();
  const cluster: TestCluster = {
    ...db, relays, nodeUrls,
    async stop() {
      for (const r of relays) await r.stop();
      await db.stop();
    },
  };
  try {
    for (let i = 0; i < o.relays; i++) {
      const host = o.hosts?.[i];
      const nodeUrl = `https://${host ?? '127.0.0.1'}:${await freePort(host)}`;
      const listen = host ? ['--listen', host] : [];
      const r = await startRelay({ extra: [...listen, '--store-file', db.storeFile, '--node-url', nodeUrl, '--cluster-secret-file', db.secretFile, ...(o.extra ?? [])], env: db.env });
      relays.push(r);
      nodeUrls.set(r, nodeUrl);
    }
  } catch (err) {
    await cluster.stop().catch(() => {});
    throw err;
  }
  return cluster;
}
