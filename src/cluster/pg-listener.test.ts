import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { startPostgres, type Postgres } from '../../test/support/postgres.ts';
import { createLogger } from '../lib/logger.ts';
import { ClusterCounters } from './metrics.ts';
import { PgListener } from './pg-listener.ts';

// LISTEN/NOTIFY over a dedicated connection that comes back by itself after PostgreSQL restarts.

async function until(cond: () => boolean, what: string, ceilingMs = 20_000): Promise<void> {
  const end = Date.now() + ceilingMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('PgListener (PostgreSQL)', () => {
  let postgres: Postgres;
  let url: string;
  before(async () => {
    postgres = await startPostgres();
    url = await postgres.createDatabase();
  });
  after(async () => postgres?.stop());

  const notify = async (payload: string) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query('select pg_notify($1, $2)', ['tunn_test', payload]);
    } finally {
      await c.end();
    }
  };

  it('hears notifications, and hears them again after the database restarts, saying so in its log', async () => {
    const heard: string[] = [];
    const events: string[] = [];
    let connects = 0;
    const logger = createLogger({ json: true, destination: new Writable({ write: (chunk, _e, cb) => (events.push(String(JSON.parse(String(chunk)).event)), cb()) }) });
    const counters = new ClusterCounters();
    const l = new PgListener({ url, channels: ['tunn_test'], onNotify: (ch, p) => heard.push(`${ch}:${p}`), onConnect: () => connects++, logger, retryMs: 50, counters });
    try {
      await l.start();
      await notify('one');
      await until(() => heard.includes('tunn_test:one'), 'the first notification');
      await postgres.stopServer();
      await until(() => events.includes('cluster_listen_lost'), 'the lost-connection log line');
      await postgres.startServer();
      await until(() => events.includes('cluster_listen_back'), 'the reconnected log line');
      assert.equal(connects, 2, 'onConnect ran again (to re-read what changed while deaf)');
      assert.deepEqual([counters.listenLost, counters.listenBack], [1, 1]);
      await notify('two');
      await until(() => heard.includes('tunn_test:two'), 'a notification after the restart');
    } finally {
      await l.close();
    }
  });

  it('refuses a channel name it would have to quote', () => {
    assert.throws(() => new PgListener({ url, channels: ['x; drop table y'], onNotify: () => {}, logger: createLogger({ json: true, destination: new Writable({ write: (_c, _e, cb) => cb() }) }) }), TypeError);
  });
});
