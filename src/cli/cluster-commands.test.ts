import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type Postgres } from '../../test/support/postgres.ts';
import { StoreLeaseTable } from '../cluster/leases.ts';
import { NodeRegistry } from '../cluster/nodes.ts';
import { ManualClock } from '../lib/clock.ts';
import { openStore } from '../store/store.ts';
import { runRelayStatus, statusStoreUrl } from './cluster-commands.ts';

// `tunn relay status` against a real PostgreSQL: nodes (alive, since, agents, tunnels) and leases.

const T0 = Date.parse('2026-03-01T12:00:00Z');

describe('tunn relay status', () => {
  let pg: Postgres;
  let url: string;
  const clock = new ManualClock(T0);
  const dir = mkdtempSync(join(tmpdir(), 'tunn-status-'));

  before(async () => {
    pg = await startPostgres();
    url = await pg.createDatabase();
    const store = await openStore(url);
    try {
      const nodes = new NodeRegistry({ store, clock });
      const leases = new StoreLeaseTable({ store });
      await nodes.join({ id: 'nold', url: 'https://10.0.0.13:7443', version: '0.1.0' });
      clock.advance(60_000);
      await nodes.join({ id: 'na', url: 'https://10.0.0.11:7443', version: '0.1.0' });
      await nodes.join({ id: 'nb', url: 'https://10.0.0.12:7443', version: '0.1.0' });
      await leases.acquire({ host: 'grafana.tunn.example.com', nodeId: 'na', sessionId: 's1', tunnelId: 't1', name: 'grafana', accountId: 'acc', agentId: 'ag1', kind: 'http', port: null }, clock.now());
      await leases.acquire({ host: 'grafana.tunn.example.com', nodeId: 'nb', sessionId: 's2', tunnelId: 't1', name: 'grafana', accountId: 'acc', agentId: 'ag1', kind: 'http', port: null }, clock.now());
      await leases.acquire({ host: 'db.tunn.example.com', nodeId: 'nb', sessionId: 's2', tunnelId: 't2', name: 'db', accountId: 'acc', agentId: 'ag1', kind: 'tcp', port: 40001 }, clock.now());
      clock.advance(2000);
      await nodes.heartbeat('na', { agents: 1, tunnels: 1 });
      await nodes.heartbeat('nb', { agents: 1, tunnels: 2 });
    } finally {
      await store.close();
    }
  });
  after(async () => {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = async (flags: Record<string, unknown>): Promise<string> => {
    let out = '';
    await runRelayStatus(flags, clock, { write: (s: string) => (out += s) });
    return out;
  };

  it('lists nodes (alive, since, agents, tunnels) and leases', async () => {
    const text = await run({ store: url });
    assert.match(text, /^2 of 3 relays alive\n/);
    assert.match(text, /NODE +URL +ALIVE +SINCE +LAST SEEN +AGENTS +TUNNELS +VERSION/);
    assert.match(text, /nold +https:\/\/10\.0\.0\.13:7443 +no +1m ago +1m ago +0 +0 +0\.1\.0/);
    assert.match(text, /na +https:\/\/10\.0\.0\.11:7443 +yes +2s ago +0s ago +1 +1 +0\.1\.0/);
    assert.match(text, /nb +https:\/\/10\.0\.0\.12:7443 +yes +2s ago +0s ago +1 +2 +0\.1\.0/);
    assert.match(text, /\n3 leases\n/);
    assert.match(text, /db\.tunn\.example\.com +nb +s2 +ag1 +tcp +40001 +2s ago +in 8s/);
    assert.match(text, /grafana\.tunn\.example\.com +na +s1 +ag1 +http +- +2s ago +in 8s/);
  });

  it('--json gives the same, with ISO times', async () => {
    const line = JSON.parse(await run({ store: url, json: true })) as { event: string; nodes: { id: string; alive: boolean; startedAt: string; tunnels: number }[]; leases: { host: string; nodeId: string; port: number | null; expiresAt: string }[] };
    assert.equal(line.event, 'cluster_status');
    assert.deepEqual(line.nodes.map((n) => [n.id, n.alive, n.tunnels]), [['nold', false, 0], ['na', true, 1], ['nb', true, 2]]);
    assert.equal(line.nodes[1]!.startedAt, new Date(T0 + 60_000).toISOString());
    assert.deepEqual(line.leases.map((l) => [l.host, l.nodeId, l.port]), [['db.tunn.example.com', 'nb', 40001], ['grafana.tunn.example.com', 'na', null], ['grafana.tunn.example.com', 'nb', null]]);
    assert.equal(line.leases[0]!.expiresAt, new Date(T0 + 60_000 + 10_000).toISOString());
  });

  it('takes the URL from --store-file, then TUNN_STORE; says when no relay has joined', async () => {
    const file = join(dir, 'store-url');
    writeFileSync(file, url + '\n', { mode: 0o600 });
    assert.equal(statusStoreUrl({ storeFile: file }, { TUNN_STORE: 'postgres://elsewhere/x' }), url);
    assert.equal(statusStoreUrl({}, { TUNN_STORE: url }), url);
    assert.equal(statusStoreUrl({ dataDir: dir }, { TUNN_STORE_FILE: file }), url);
    assert.equal(await run({ store: await pg.createDatabase() }), 'no relay has joined a cluster on this database (relays appear here when they run with --node-url and a postgres:// --store)\n');
  });
});
