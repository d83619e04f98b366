import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type Postgres } from '../../test/support/postgres.ts';
import { TokenService } from '../auth/tokens.ts';
import { ManualClock } from '../lib/clock.ts';
import { isTunnError } from '../lib/errors.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { openStore, type Dialect, type Store } from '../store/store.ts';
import { checkSealingKey } from './sealing.ts';

// The sealing check, with two keys on one database (SQLite and PostgreSQL).

const clock = new ManualClock(Date.parse('2026-03-01T12:00:00Z'));

const wrongKeyError = (e: unknown) =>
  isTunnError(e, 'CONFIG_INVALID') && /sealing key cannot open .* in its database: every relay that shares a database must use the same key\. Give this relay the TUNN_SECRET_KEY/.test(e.message);

for (const dialect of ['sqlite', 'postgres'] as Dialect[]) {
  describe(`sealing key check on ${dialect}`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'tunn-sealing-'));
    let pg: Postgres | undefined;
    let n = 0;
    const fresh = async (): Promise<Store> => openStore(dialect === 'postgres' ? await pg!.createDatabase() : join(dir, `s${++n}.db`));
    before(async () => {
      if (dialect === 'postgres') pg = await startPostgres();
    });
    after(async () => {
      await pg?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('the first relay writes the check; the same key passes; another key is refused, saying what to do', async () => {
      // Security: a relay with another sealing key never starts on the cluster's database (it would seal secrets the others cannot open).
      const store = await fresh();
      try {
        const a = new SecretBox(randomBytes(32));
        assert.equal(await checkSealingKey(store, a, clock), 'created');
        assert.equal(await checkSealingKey(store, a, clock), 'verified');
        await assert.rejects(checkSealingKey(store, new SecretBox(randomBytes(32)), clock), wrongKeyError);
      } finally {
        await store.close();
      }
    });

    it('a database from before the check is judged by its signing keys before it gets one', async () => {
      const store = await fresh();
      try {
        const a = new SecretBox(randomBytes(32));
        // A relay of an older version sealed its signing key with key A.
        await new TokenService({ store, box: a, clock, issuer: 'tunn' }).init();
        await assert.rejects(checkSealingKey(store, new SecretBox(randomBytes(32)), clock), (e) => wrongKeyError(e) && /the token signing keys/.test((e as Error).message));
        assert.equal(await store.db.selectFrom('seal_canary').selectAll().executeTakeFirst(), undefined, 'the wrong key wrote nothing');
        assert.equal(await checkSealingKey(store, a, clock), 'created');
      } finally {
        await store.close();
      }
    });

    if (dialect === 'postgres') {
      it('two relays with different keys starting at once on an empty database: exactly one starts', async () => {
        const url = await pg!.createDatabase();
        const stores = [await openStore(url), await openStore(url)];
        try {
          const results = await Promise.allSettled(stores.map((s) => checkSealingKey(s, new SecretBox(randomBytes(32)), clock)));
          assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
          const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
          assert.ok(wrongKeyError(failed.reason), String(failed.reason));
        } finally {
          for (const s of stores) await s.close();
        }
      });
    }
  });
}
