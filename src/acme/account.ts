import * as acme from 'acme-client';
import type { SecretBox } from '../lib/secret-box.ts';
import { nowIso } from '../lib/ids.ts';
import type { Store } from '../store/store.ts';

// One ACME account per directory URL, its key sealed in acme_accounts. newAccount is
// idempotent for a known key (RFC 8555 7.3.1), so the key is all that needs keeping.

export async function acmeAccountKey(store: Store, box: SecretBox, directoryUrl: string, email: string | undefined, now = Date.now()): Promise<string> {
  const context = `acme-account:${directoryUrl}`;
  const row = await store.db.selectFrom('acme_accounts').selectAll().where('directory_url', '=', directoryUrl).executeTakeFirst();
  if (row) return box.openString(row.key_sealed, context);
  const key = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
  await store.db
    .insertInto('acme_accounts')
    .values({ directory_url: directoryUrl, email: email ?? null, key_sealed: box.seal(key, context), account_url: null, created_at: nowIso(now) })
    .onConflict((oc) => oc.column('directory_url').doNothing())
    .execute();
  // Another relay (or a concurrent call) may have won the insert: use the stored key.
  const stored = await store.db.selectFrom('acme_accounts').select('key_sealed').where('directory_url', '=', directoryUrl).executeTakeFirstOrThrow();
  return box.openString(stored.key_sealed, context);
}

export async function recordAcmeAccountUrl(store: Store, directoryUrl: string, accountUrl: string): Promise<void> {
  await store.db.updateTable('acme_accounts').set({ account_url: accountUrl }).where('directory_url', '=', directoryUrl).execute();
}
