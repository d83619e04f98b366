import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { AcmeAccountStore } from '../acme/account.ts';
import { SecretBox } from '../lib/secret-box.ts';
import { openStore, type Store } from '../store/store.ts';
import { FileAcmeAccounts } from './file-acme-accounts.ts';
import { KyselyAcmeAccounts } from './kysely-acme-accounts.ts';

// The AcmeAccountStore contract (src/acme/account.ts) on the relay's database and on files:
// one key per directory for everyone sharing the storage, also when they race; the key
// protected at rest. (PostgreSQL runs the database case in src/store/store.test.ts.)

const DIR_URL = 'https://acme.test/directory';

for (const backend of ['sqlite', 'files'] as const) {
  describe(`ACME account keys on ${backend}`, () => {
    const dir = mkdtempSync(join(tmpdir(), `tunn-acme-accounts-${backend}-`));
    const box = new SecretBox(randomBytes(32));
    const stores: Store[] = [];
    after(async () => {
      for (const s of stores) await s.close();
      rmSync(dir, { recursive: true, force: true });
    });
    /** Two users of one storage (two processes). */
    async function two(): Promise<[AcmeAccountStore, AcmeAccountStore]> {
      if (backend === 'files') return [new FileAcmeAccounts(join(dir, 'accounts'), { box }), new FileAcmeAccounts(join(dir, 'accounts'), { box })];
      const url = join(dir, 'tunn.db');
      const [a, b] = [await openStore(url), await openStore(url)];
      stores.push(a, b);
      return [new KyselyAcmeAccounts(a, box), new KyselyAcmeAccounts(b, box)];
    }

    it('one key per directory for everyone, also when they race; the account URL is kept', async () => {
      const [a, b] = await two();
      const keys = await Promise.all([a, b, a, b].map((s) => s.accountKey(DIR_URL, 'ops@example.com')));
      assert.equal(new Set(keys).size, 1);
      assert.match(keys[0]!, /BEGIN PRIVATE KEY/);
      assert.notEqual(await a.accountKey('https://other.test/directory', undefined), keys[0], 'another directory, another key');
      await a.recordAccountUrl(DIR_URL, 'https://acme.test/acct/1');
      assert.equal(await b.accountKey(DIR_URL, undefined), keys[0]);
    });

    // Security property: the account key (which can revoke every certificate) is not readable at rest.
    it('keeps the key sealed at rest', async () => {
      if (backend === 'files') {
        const d = join(dir, 'accounts');
        for (const f of readdirSync(d)) {
          assert.equal(readFileSync(join(d, f), 'utf8').includes('PRIVATE KEY'), false, `no PEM key in ${f}`);
          assert.equal(statSync(join(d, f)).mode & 0o077, 0, 'only the owner may read it');
          const saved = JSON.parse(readFileSync(join(d, f), 'utf8')) as { directoryUrl: string; accountUrl: string | null };
          assert.equal(saved.accountUrl, saved.directoryUrl === DIR_URL ? 'https://acme.test/acct/1' : null, 'account URL recorded');
        }
        await assert.rejects(new FileAcmeAccounts(d).accountKey(DIR_URL, undefined), /is sealed and this store has no key to open it/);
      } else {
        const rows = await stores[0]!.db.selectFrom('acme_accounts').selectAll().execute();
        assert.equal(rows.length, 2);
        assert.equal(JSON.stringify(rows).includes('PRIVATE KEY'), false);
        assert.equal(rows.find((r) => r.directory_url === DIR_URL)?.account_url, 'https://acme.test/acct/1');
      }
    });
  });
}
