import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type Postgres } from '../../test/support/postgres.ts';
import { ManualClock } from '../lib/clock.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { openStore, type Store } from '../store/store.ts';
import { createCa, issueLeaf, type KeyAndCert } from './dev-ca.ts';
import { FileLocker } from './file-locker.ts';
import { FileCertStorage } from './file-storage.ts';
import { certInfo, type IssuedCertificate } from './issuer.ts';
import { PostgresAdvisoryLocker, storeLocker } from './kysely-locker.ts';
import { KyselyCertStorage } from './kysely-storage.ts';
import type { CertStorage, Locker } from './storage.ts';

// The CertStorage and Locker contracts (storage.ts), one suite looped over every backend: the
// relay's database on SQLite and on PostgreSQL (a throwaway cluster), and files. "Two
// processes" are two stores on one database, or two storages on one directory.

type Backend = 'sqlite' | 'postgres' | 'files';
const BACKENDS: Backend[] = ['sqlite', 'postgres', 'files'];
const T0 = Date.parse('2026-03-01T12:00:00Z');

interface Pair {
  a: { storage: CertStorage; locker: Locker };
  b: { storage: CertStorage; locker: Locker };
  /** The database of a database backend. */
  url?: string;
  close(): Promise<void>;
}

let ca: KeyAndCert;
async function cert(names: string[]): Promise<IssuedCertificate> {
  const leaf = await issueLeaf(ca, names, 30);
  const info = certInfo(leaf.certPem);
  return { chainPem: leaf.certPem, keyPem: leaf.keyPem, issuer: 'test', names, notBefore: info.notBefore, notAfter: info.notAfter };
}

for (const backend of BACKENDS) {
  describe(`certificate storage and locks on ${backend}`, () => {
    const dir = mkdtempSync(join(tmpdir(), `tunn-storage-${backend}-`));
    const box = new SecretBox(randomBytes(32));
    let pg: Postgres | undefined;
    let n = 0;

    /** Two users of one shared storage, as two relays or two agent processes would be. */
    async function pair(): Promise<Pair> {
      n++;
      if (backend === 'files') {
        const d = join(dir, `files-${n}`);
        const mk = () => ({ storage: new FileCertStorage(d, { box }), locker: new FileLocker(join(d, 'locks'), { pollMs: 10 }) });
        return { a: mk(), b: mk(), close: async () => {} };
      }
      const url = backend === 'postgres' ? await pg!.createDatabase() : join(dir, `s${n}.db`);
      const stores: Store[] = [await openStore(url), await openStore(url)];
      // SQLite is one relay's file: one process, one locker (MemoryLocker) shared by its users.
      const shared = storeLocker(stores[0]!);
      const mk = (s: Store) => ({ storage: new KyselyCertStorage(s, box), locker: backend === 'sqlite' ? shared : storeLocker(s) });
      return { a: mk(stores[0]!), b: mk(stores[1]!), url, close: async () => void (await Promise.all(stores.map((s) => s.close()))) };
    }

    before(async () => {
      ca ??= await createCa('storage test CA');
      if (backend === 'postgres') pg = await startPostgres();
    });
    after(async () => {
      await pg?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('save replaces atomically with a fresh id; load, list, renewal window and delete', async () => {
      const p = await pair();
      try {
        const { a, b } = p;
        assert.equal(await a.storage.load('*.x.test'), undefined);
        const first = await a.storage.save('*.x.test', await cert(['*.x.test']), T0);
        const seen = await b.storage.load('*.x.test');
        assert.equal(seen?.id, first.id, 'the other user sees it');
        assert.equal(seen?.keyPem, first.keyPem);
        const second = await b.storage.save('*.x.test', await cert(['*.x.test']), T0 + 1);
        assert.notEqual(second.id, first.id);
        // A window for a certificate that was replaced meanwhile changes nothing.
        await a.storage.setRenewalWindow('*.x.test', first.id, { start: T0, end: T0 + 1 }, T0 + 2);
        assert.equal((await a.storage.load('*.x.test'))?.renewalWindow, undefined);
        await a.storage.setRenewalWindow('*.x.test', second.id, { start: T0 + 10, end: T0 + 20 }, T0 + 3);
        const loaded = (await b.storage.load('*.x.test'))!;
        assert.deepEqual(loaded.renewalWindow, { start: T0 + 10, end: T0 + 20 });
        assert.equal(loaded.ariCheckedAt, T0 + 3);
        assert.equal(loaded.chainPem, second.chainPem);
        assert.equal(loaded.keyPem, second.keyPem);
        await a.storage.save('relay.test', await cert(['relay.test']), T0);
        const list = await b.storage.list();
        assert.deepEqual(list.map((c) => c.name), ['*.x.test', 'relay.test']);
        assert.equal('keyPem' in list[0]! || 'chainPem' in list[0]!, false, 'list carries no key or chain');
        await a.storage.delete('relay.test');
        await a.storage.delete('relay.test'); // missing: not an error
        assert.equal(await b.storage.load('relay.test'), undefined);
      } finally {
        await p.close();
      }
    });

    it('concurrent saves of one name: every load sees one whole certificate (chain and key match)', async () => {
      const p = await pair();
      try {
        const certs = await Promise.all([1, 2, 3, 4].map(() => cert(['*.race.test'])));
        const loads: Promise<unknown>[] = [];
        await Promise.all(
          certs.map(async (c, i) => {
            await (i % 2 ? p.a : p.b).storage.save('*.race.test', c, T0);
            loads.push((i % 2 ? p.b : p.a).storage.load('*.race.test'));
          }),
        );
        for (const l of [...(await Promise.all(loads)), await p.a.storage.load('*.race.test')]) {
          const got = l as { chainPem: string; keyPem: string };
          const match = certs.find((c) => c.chainPem === got.chainPem);
          assert.ok(match, 'one of the saved certificates');
          assert.equal(got.keyPem, match.keyPem, 'its own key, never another save’s');
        }
      } finally {
        await p.close();
      }
    });

    // Security property: private keys are not readable at rest (sealed in the database; sealed
    // and owner-only in files).
    it('keeps private keys protected at rest', async () => {
      const p = await pair();
      try {
        const c = await cert(['sealed.test']);
        await p.a.storage.save('sealed.test', c, T0);
        if (backend === 'files') {
          const d = join(dir, `files-${n}`);
          const file = readdirSync(d).find((f) => f.endsWith('.json'))!;
          assert.equal(readFileSync(join(d, file), 'utf8').includes('PRIVATE KEY'), false, 'no PEM key in the file');
          assert.equal(statSync(join(d, file)).mode & 0o077, 0, 'only the owner may read it');
          // Without the key to open it, the storage says so rather than serving nothing.
          await assert.rejects(new FileCertStorage(d).load('sealed.test'), /its key is sealed and this storage has no key to open it/);
        } else {
          const raw = await openStore(p.url!);
          try {
            const row = await raw.db.selectFrom('certificates').selectAll().where('name', '=', 'sealed.test').executeTakeFirstOrThrow();
            assert.equal(JSON.stringify(row).includes('PRIVATE KEY'), false, 'no PEM key in the row');
            await assert.rejects(new KyselyCertStorage(raw, new SecretBox(randomBytes(32))).load('sealed.test'), 'another secret key does not open it');
          } finally {
            await raw.close();
          }
        }
      } finally {
        await p.close();
      }
    });

    // Security property (DESIGN decision 15): one ACME order per certificate across relays (or
    // agent processes) sharing a storage: the lock excludes the other user until released.
    it('a lock excludes the other user of the storage until it is released', async () => {
      const p = await pair();
      try {
        const order: string[] = [];
        const unlockA = await p.a.locker.lock('certificate:*.lock.test');
        const bWaits = p.b.locker.lock('certificate:*.lock.test').then((u) => (order.push('b locked'), u));
        await sleep(300);
        assert.equal(order.length, 0, 'b waits while a holds the lock');
        const other = await p.b.locker.lock('certificate:*.other.test');
        await other();
        order.push('a unlocks');
        await unlockA();
        const unlockB = await bWaits;
        assert.deepEqual(order, ['a unlocks', 'b locked']);
        await unlockB();
        await unlockB(); // again: a no-op
        const again = await p.a.locker.lock('certificate:*.lock.test');
        await again();
      } finally {
        await p.close();
      }
    });

    it('a waiter gives up when its signal aborts, holding nothing', async () => {
      const p = await pair();
      try {
        const unlockA = await p.a.locker.lock('k');
        await assert.rejects(p.b.locker.lock('k', { signal: AbortSignal.timeout(200) }), (e: Error) => e.name === 'TimeoutError' || e.name === 'AbortError');
        await unlockA();
        const u = await p.b.locker.lock('k', { signal: AbortSignal.timeout(10_000) });
        await u();
      } finally {
        await p.close();
      }
    });

    if (backend === 'postgres') {
      // Locks hold pooled connections: they must not starve the relay's other queries.
      it('locks use at most maxConnections of the pool; further callers wait in the process', async () => {
        const store = await openStore(await pg!.createDatabase());
        try {
          const locker = new PostgresAdvisoryLocker(store, { maxConnections: 1, pollMs: 10 });
          const first = await locker.lock('one');
          let second = false;
          const waiting = locker.lock('two').then((u) => ((second = true), u));
          await sleep(200);
          assert.equal(second, false, 'another key waits for the one connection');
          const { rows } = await sql<{ one: number }>`SELECT 1 AS one`.execute(store.db);
          assert.equal(rows[0]!.one, 1, 'the rest of the pool still answers');
          await first();
          await (await waiting)();
          assert.equal(second, true);
        } finally {
          await store.close();
        }
      });

      // A relay that dies (its database session ends) does not keep the lock.
      it('a lock whose database session ends (a relay that died) is released at once', async () => {
        const url = await pg!.createDatabase();
        const [s1, s2] = [await openStore(url), await openStore(url)];
        const { default: pgLib } = await import('pg');
        const admin = new pgLib.Client({ connectionString: url });
        try {
          const held = await storeLocker(s1).lock('certificate:*.dead.test');
          await admin.connect();
          const cut = await admin.query("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted");
          assert.equal(cut.rowCount, 1, 'one session holds the lock');
          const u = await storeLocker(s2).lock('certificate:*.dead.test', { signal: AbortSignal.timeout(20_000) });
          await u();
          await held(); // its session is gone: releasing says so in the log and throws nothing
        } finally {
          await admin.end().catch(() => {});
          await Promise.all([s1.close(), s2.close()]);
        }
      });
    }


    if (backend === 'files') {
      // A process that died leaves its lock file behind; it is taken over once stale.
      it('a stale lock file (not refreshed) is taken over; a live one is not', async () => {
        const d = join(dir, 'stale-locks');
        const clock = new ManualClock(T0);
        const locker = new FileLocker(d, { pollMs: 10, staleMs: 30_000, clock });
        const dead = new FileLocker(d, { clock });
        await dead.lock('certificate:*.stale.test'); // never released: its process "died"
        let got = false;
        const waiting = locker.lock('certificate:*.stale.test').then((u) => ((got = true), u));
        await sleep(200);
        assert.equal(got, false, 'a fresh lock file is respected');
        clock.advance(31_000);
        const unlock = await waiting;
        await unlock();
        // A half-written lock file (a crash mid-write) is judged by its age.
        writeFileSync(dead.pathOf('half'), '{"own');
        const u2 = await new FileLocker(d, { pollMs: 10, staleMs: 0, clock: { now: () => Date.now() + 1000 } }).lock('half');
        await u2();
      });
    }
  });
}

// The manager passes one long-lived signal (its stop) to every lock: a lock must not leave a
// listener on it behind.
it('locks leave no abort listener on a long-lived signal', async () => {
  const { EventEmitter } = await import('node:events');
  const { MemoryLocker } = await import('./memory-locker.ts');
  const dir = mkdtempSync(join(tmpdir(), 'tunn-listeners-'));
  try {
    const signal = new AbortController().signal;
    for (const locker of [new MemoryLocker(), new FileLocker(dir, { pollMs: 5 })]) {
      const held = await locker.lock('k', { signal });
      const waiter = locker.lock('k', { signal }); // waits, with the signal
      await sleep(30);
      await held();
      await (await waiter)();
      for (let i = 0; i < 20; i++) await (await locker.lock(`k${i}`, { signal }))();
      assert.equal(EventEmitter.getEventListeners(signal, 'abort').length, 0);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
