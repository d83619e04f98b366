import { createAcmeAccountKey, type AcmeAccountStore } from '../acme/account.ts';
import { nowIso } from '../lib/ids.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { Store } from '../store/store.ts';

// ACME account keys in the relay's database (acme_accounts), sealed with the relay's SecretBox
// and bound to the directory URL, so a sealed key copied to another row does not open.

export class KyselyAcmeAccounts implements AcmeAccountStore {
  readonly #store: Store;
  readonly #box: SecretBox;
  readonly #now: () => number;

  constructor(store: Store, box: SecretBox, now: () => number = Date.now) {
    this.#store = store;
    this.#box = box;
    this.#now = now;
  }

  async accountKey(directoryUrl: string, email: string | undefined): Promise<string> {
    const context = `acme-account:${directoryUrl}`;
    const db = this.#store.db;
    const row = await db.selectFrom('acme_accounts').select('key_sealed').where('directory_url', '=', directoryUrl).executeTakeFirst();
    if (row) return this.#box.openString(row.key_sealed, context);
    const key = await createAcmeAccountKey();
    await db
      .insertInto('acme_accounts')
      .values({ directory_url: directoryUrl, email: email ?? null, key_sealed: this.#box.seal(key, context), account_url: null, created_at: nowIso(this.#now()) })
      .onConflict((oc) => oc.column('directory_url').doNothing())
      .execute();
    // Another relay (or a concurrent call) may have won the insert: use the stored key.
    const stored = await db.selectFrom('acme_accounts').select('key_sealed').where('directory_url', '=', directoryUrl).executeTakeFirstOrThrow();
    return this.#box.openString(stored.key_sealed, context);
  }

  async recordAccountUrl(directoryUrl: string, accountUrl: string): Promise<void> {
    await this.#store.db.updateTable('acme_accounts').set({ account_url: accountUrl }).where('directory_url', '=', directoryUrl).execute();
  }
}
