import type { Clock } from '../lib/clock.ts';
import { TunnError } from '../lib/errors.ts';
import { nowIso, randomId } from '../lib/ids.ts';
import type { Store } from '../store/store.ts';
import { requireEmails } from './emails.ts';
import { groupExists, requireGroupName } from './group-name.ts';

export { isValidGroupName } from './group-name.ts';

// Groups lite (seed 002): a group is a saved list of emails owned by one account. Nothing
// more: no sharing, no nesting, no roles.
//
// Policy evaluation reads members through a small cache. A write through this service
// invalidates its entry at once, so on one relay a change applies to live tunnels on the very
// next request; other relays sharing the database see it after at most `cacheTtlMs`.

export interface Group {
  name: string;
  emails: string[];
  createdAt: string;
  updatedAt: string;
}

export class GroupService {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #ttl: number;
  #cache = new Map<string, { members: Set<string> | null; at: number }>();

  constructor(opts: { store: Store; clock: Clock; cacheTtlMs?: number }) {
    this.#store = opts.store;
    this.#clock = opts.clock;
    this.#ttl = opts.cacheTtlMs ?? 2000;
  }

  async create(accountId: string, rawName: string, rawEmails: readonly string[]): Promise<Group> {
    const name = requireGroupName(rawName);
    const emails = requireEmails(rawEmails).sort();
    const ts = nowIso(this.#clock.now());
    const res = await this.#store.db
      .insertInto('groups')
      .values({ id: randomId(16), account_id: accountId, name, emails: JSON.stringify(emails), created_at: ts, updated_at: ts })
      .onConflict((oc) => oc.columns(['account_id', 'name']).doNothing())
      .executeTakeFirst();
    if (Number(res.numInsertedOrUpdatedRows ?? 0n) === 0) {
      throw groupExists(name);
    }
    this.#invalidate(accountId, name);
    return { name, emails, createdAt: ts, updatedAt: ts };
  }

  async list(accountId: string): Promise<Group[]> {
    const rows = await this.#store.db.selectFrom('groups').selectAll().where('account_id', '=', accountId).orderBy('name').execute();
    return rows.map((r) => ({ name: r.name, emails: JSON.parse(r.emails) as string[], createdAt: r.created_at, updatedAt: r.updated_at }));
  }

  /** The group; NOT_FOUND naming it when the account has none by that name. */
  async show(accountId: string, rawName: string): Promise<Group> {
    const name = requireGroupName(rawName);
    const r = await this.#store.db.selectFrom('groups').selectAll().where('account_id', '=', accountId).where('name', '=', name).executeTakeFirst();
    if (!r) throw this.#notFound(name);
    return { name: r.name, emails: JSON.parse(r.emails) as string[], createdAt: r.created_at, updatedAt: r.updated_at };
  }

  async add(accountId: string, rawName: string, rawEmails: readonly string[]): Promise<Group> {
    const add = requireEmails(rawEmails);
    return this.#update(accountId, rawName, (cur) => [...new Set([...cur, ...add])]);
  }

  /** Removes members; an email that is not a member is reported, and nothing changes. */
  async remove(accountId: string, rawName: string, rawEmails: readonly string[]): Promise<Group> {
    const rm = requireEmails(rawEmails);
    return this.#update(accountId, rawName, (cur, name) => {
      const missing = rm.filter((e) => !cur.includes(e));
      if (missing.length) throw new TunnError('NOT_FOUND', `${missing.map((m) => `"${m}"`).join(', ')} ${missing.length > 1 ? 'are' : 'is'} not in the group "${name}"`);
      return cur.filter((e) => !rm.includes(e));
    });
  }

  async delete(accountId: string, rawName: string): Promise<void> {
    const name = requireGroupName(rawName);
    const res = await this.#store.db.deleteFrom('groups').where('account_id', '=', accountId).where('name', '=', name).executeTakeFirst();
    this.#invalidate(accountId, name);
    if (Number(res.numDeletedRows) === 0) throw this.#notFound(name);
  }

  /** The members (normalised emails) for policy evaluation, or undefined when there is no such group. */
  async members(accountId: string, name: string): Promise<Set<string> | undefined> {
    const key = `${accountId}\0${name}`;
    const now = this.#clock.now();
    const hit = this.#cache.get(key);
    if (hit && now - hit.at < this.#ttl) return hit.members ?? undefined;
    const r = await this.#store.db.selectFrom('groups').select('emails').where('account_id', '=', accountId).where('name', '=', name).executeTakeFirst();
    const members = r ? new Set(JSON.parse(r.emails) as string[]) : null;
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(key, { members, at: now });
    return members ?? undefined;
  }

  async #update(accountId: string, rawName: string, change: (cur: string[], name: string) => string[]): Promise<Group> {
    const name = requireGroupName(rawName);
    const group = await this.#store.db.transaction().execute(async (tx) => {
      let q = tx.selectFrom('groups').selectAll().where('account_id', '=', accountId).where('name', '=', name);
      // PostgreSQL runs transactions concurrently (READ COMMITTED): lock the row, or two
      // concurrent changes both read the old list and one is lost. SQLite's single
      // connection already runs them one after the other (and has no FOR UPDATE).
      if (this.#store.dialect === 'postgres') q = q.forUpdate();
      const r = await q.executeTakeFirst();
      if (!r) throw this.#notFound(name);
      const emails = change(JSON.parse(r.emails) as string[], name).sort();
      const ts = nowIso(this.#clock.now());
      await tx.updateTable('groups').set({ emails: JSON.stringify(emails), updated_at: ts }).where('id', '=', r.id).execute();
      return { name, emails, createdAt: r.created_at, updatedAt: ts };
    });
    // After the commit, so a concurrent read cannot re-cache the old members.
    this.#invalidate(accountId, name);
    return group;
  }

  /** Drops every cached membership (a group changed on another relay: NOTIFY said so). */
  forgetCached(): void {
    this.#cache.clear();
  }

  #invalidate(accountId: string, name: string): void {
    this.#cache.delete(`${accountId}\0${name}`);
  }

  #notFound(name: string): TunnError {
    return new TunnError('UNKNOWN_GROUP', `there is no group "${name}" in your account; see \`tunn group list\``);
  }
}
