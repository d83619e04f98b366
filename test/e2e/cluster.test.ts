import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StoreLeaseTable } from '../../src/cluster/leases.ts';
import { NodeRegistry } from '../../src/cluster/nodes.ts';
import { systemClock } from '../../src/lib/clock.ts';
import { openStore } from '../../src/store/store.ts';
import { startPostgres, type Postgres } from '../support/postgres.ts';
import { startCli } from './harness.ts';

// Issue 14, phase 1, through the real CLI: `tunn relay status` on a PostgreSQL database that
// relays share, and `tunn relay --node-url …` refused plainly until relays join a cluster.

describe('cluster commands (real CLI, PostgreSQL)', () => {
  let pg: Postgres;
  let url: string;
  const dir = mkdtempSync(join(tmpdir(), 'tunn-e2e-cluster-'));
  const storeFile = join(dir, 'store-url');

  before(async () => {
    pg = await startPostgres();
    url = await pg.createDatabase();
    writeFileSync(storeFile, url + '\n', { mode: 0o600 });
    const store = await openStore(url);
    try {
      await new NodeRegistry({ store, clock: systemClock }).join({ id: 'na', url: 'https://127.0.0.1:7443', version: '0.1.0' });
      await new StoreLeaseTable({ store }).acquire({ host: 'grafana.tunn.example.com', nodeId: 'na', sessionId: 's1', tunnelId: 't1', name: 'grafana', accountId: 'acc', agentId: 'ag', kind: 'http', port: null }, Date.now());
    } finally {
      await store.close();
    }
  });
  after(async () => {
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('tunn relay status --store-file FILE lists the node and its lease; --json too', async () => {
    const human = startCli(['relay', 'status', '--store-file', storeFile]);
    assert.equal(await human.exited, 0, human.stderr.join('\n'));
    const text = human.lines.map((l) => String(l.raw ?? JSON.stringify(l))).join('\n');
    assert.match(text, /1 of 1 relay alive/);
    assert.match(text, /na +https:\/\/127\.0\.0\.1:7443 +yes/);
    assert.match(text, /grafana\.tunn\.example\.com +na +s1 +ag +http/);

    const json = startCli(['relay', 'status', '--json'], { env: { TUNN_STORE_FILE: storeFile } });
    assert.equal(await json.exited, 0, json.stderr.join('\n'));
    const line = json.lines.find((l) => l.event === 'cluster_status') as { nodes: { id: string; alive: boolean }[]; leases: { host: string }[] };
    assert.deepEqual(line.nodes.map((n) => [n.id, n.alive]), [['na', true]]);
    assert.deepEqual(line.leases.map((l) => l.host), ['grafana.tunn.example.com']);
  });

  it('tunn relay status on a database it cannot reach says so', async () => {
    const p = startCli(['relay', 'status', '--store', 'postgres://tunn:hunter2-password@127.0.0.1:1/none']);
    assert.equal(await p.exited, 1);
    const err = p.stderr.join('\n');
    assert.match(err, /^tunn: error: reading the cluster status from the database at 127\.0\.0\.1:1\/none: .*unreachable.*; check --store \(or --store-file, TUNN_STORE\) and that the database is running/m);
    assert.ok(!err.includes('hunter2-password'), 'the password is not echoed');
  });

  it('tunn relay --node-url is refused with what to do, until relays join a cluster (phase 2)', async () => {
    const secretFile = join(dir, 'cluster.key');
    writeFileSync(secretFile, 'c'.repeat(64) + '\n', { mode: 0o600 });
    const p = startCli(['relay', '--domain', 'tunn.example.com', '--data-dir', join(dir, 'relay'), '--store-file', storeFile, '--node-url', 'https://127.0.0.1:7443', '--cluster-secret-file', secretFile]);
    assert.equal(await p.exited, 1);
    const err = p.stderr.join('\n');
    assert.match(err, /running relays as a cluster \(--node-url, --cluster-\*\) is not available in this version yet/);
    assert.ok(!err.includes('c'.repeat(64)), 'the cluster secret is not echoed');
  });
});
