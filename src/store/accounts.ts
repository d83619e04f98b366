import { TunnError } from '../lib/errors.ts';
import { nowIso, randomId } from '../lib/ids.ts';
import type { AccountsTable } from './schema.ts';
import type { Store } from './store.ts';

export type Account = AccountsTable;

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** The account for `email`, created on first use. */
export async function ensureAccount(store: Store, email: string, now = Date.now()): Promise<Account> {
  const e = normalizeEmail(email);
  const found = await store.db.selectFrom('accounts').selectAll().where('email', '=', e).executeTakeFirst();
  if (found) return found;
  const row: Account = { id: randomId(16), email: e, acme_id: randomId(8), created_at: nowIso(now) };
  try {
    await store.db.insertInto('accounts').values(row).execute();
    return row;
  } catch (err) {
    // Lost a race with another insert of the same email: read the winner.
    const again = await store.db.selectFrom('accounts').selectAll().where('email', '=', e).executeTakeFirst();
    if (again) return again;
    throw err;
  }
}

export async function accountById(store: Store, id: string): Promise<Account | undefined> {
  return store.db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function accountByEmail(store: Store, email: string): Promise<Account | undefined> {
  return store.db.selectFrom('accounts').selectAll().where('email', '=', normalizeEmail(email)).executeTakeFirst();
}

/**
 * Claims `name` under `domain` for the account: a name belongs to the account that first
 * used it. Returns normally when the account already holds it; throws NAME_TAKEN otherwise.
 */
export async function claimName(store: Store, domain: string, name: string, accountId: string, now = Date.now()): Promise<void> {
  const ts = nowIso(now);
  await store.db
    .insertInto('names')
    .values({ domain, name, account_id: accountId, created_at: ts, last_used_at: ts })
    .onConflict((oc) => oc.columns(['domain', 'name']).doNothing())
    .execute();
  const row = await store.db
    .selectFrom('names')
    .select('account_id')
    .where('domain', '=', domain)
    .where('name', '=', name)
    .executeTakeFirst();
  if (!row || row.account_id !== accountId) {
    throw new TunnError('NAME_TAKEN', `the name "${name}" belongs to another account; choose another with -n`);
  }
  await store.db.updateTable('names').set({ last_used_at: ts }).where('domain', '=', domain).where('name', '=', name).execute();
}

/** Whether some account holds `name` under `domain` (its tunnel may be offline). */
export async function nameIsHeld(store: Store, domain: string, name: string): Promise<boolean> {
  const row = await store.db.selectFrom('names').select('account_id').where('domain', '=', domain).where('name', '=', name).executeTakeFirst();
  return row !== undefined;
}
