import type { Clock } from '../lib/clock.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import { errorMessage } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { Store } from '../store/store.ts';
import type { EventLog } from './events.ts';
import type { OidcSecrets } from './oidc.ts';

// Groups the company's identity provider keeps, for `-a idp:<name>`. Two sources:
//   - the OIDC issuer configured with --oidc-groups-claim: the groups its sign-in brought,
//     stored per relay session family (the root session id), so every tunnel host handed off
//     from that sign-in sees them. Only that issuer's sign-ins write them: a GitHub or
//     magic-link sign-in never brings groups.
//   - a directory (LDAP, src/auth/ldap.ts), asked by email for any login method.
// Membership is trusted for at most `refreshMs` (--idp-refresh, default 5 minutes): a
// directory answer older than that is asked again; OIDC groups older than that are asked of
// the provider again with the sign-in's refresh token (or its access token at userinfo), and
// where the provider allows neither they lapse and the visitor signs in again. An answer that cannot be had (directory down, groups lapsed) is
// reported as a problem, and the policy then fails closed: it never treats "unknown" as "member".

export const DEFAULT_IDP_REFRESH_MS = 5 * 60_000;

/** Where group membership is looked up by email (LDAP). Implementations MUST be safe for concurrent use. */
export interface GroupDirectory {
  /** For messages: "the LDAP directory ldaps://ldap.corp". */
  readonly label: string;
  /**
   * The names of the groups of the user with this email ([] when the directory does not know
   * the user). Throws when the directory cannot answer; an error about this one user (not the
   * directory as a whole) carries `userSpecific: true`.
   */
  groupsOf(email: string): Promise<string[]>;
}

/** What the relay knows of a visitor's IdP groups right now. */
export interface IdpLookup {
  /** Normalised group names (trimmed, lower-case), sorted. */
  groups: string[];
  /**
   * Why some membership could not be confirmed, for the visitor: each a sentence that says what
   * to do, naming no host, base DN or error of the relay's sources. Empty when all answered.
   */
  problems: string[];
  /** The same, with the cause (source, error), for the relay's log and security events only. */
  details: string[];
}

/** Who is asking: the email, and the root session id when the visitor came with a browser session. */
export interface IdpSubject {
  email: string;
  rootSessionId?: string;
  /** For security events: the account the event concerns (the tunnel owner). */
  accountId?: string;
}

/** Group names compare trimmed and case-insensitively ("Engineering" in the IdP is idp:engineering). */
export function normaliseIdpGroup(name: string): string {
  return name.trim().toLowerCase();
}

/** A valid `idp:<name>`: 1–256 printable characters, no comma (lists are comma-separated in env vars). */
export function isValidIdpGroupName(name: string): boolean {
  return name.length > 0 && name.length <= 256 && !/[\u0000-\u001f\u007f,]/.test(name);
}

/**
 * The groups in a claim set at `path` (a claim name, or a dotted path into nested objects:
 * `realm_access.roles`). Entries may be strings or objects with a `name` (or `displayName`)
 * string. Undefined when the claim is absent; [] when present but empty.
 */
export function groupsFromClaims(claims: Record<string, unknown>, path: string): string[] | undefined {
  let v: unknown = claims;
  // A claim whose name itself contains dots wins over the nested reading.
  if (Object.hasOwn(claims, path)) v = claims[path];
  else {
    for (const part of path.split('.')) {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, part)) return undefined;
      v = (v as Record<string, unknown>)[part];
    }
  }
  if (v === undefined || v === null) return undefined;
  const list = Array.isArray(v) ? v : [v];
  const out = new Set<string>();
  for (const item of list) {
    const name = typeof item === 'string' ? item : typeof item === 'object' && item !== null ? ((item as { name?: unknown }).name ?? (item as { displayName?: unknown }).displayName) : undefined;
    if (typeof name === 'string' && isValidIdpGroupName(name.trim())) out.add(normaliseIdpGroup(name));
  }
  return [...out].sort();
}

export interface IdpGroupsOptions {
  store: Store;
  clock: Clock;
  events: EventLog;
  refreshMs?: number;
  /** Provider ids whose sign-ins carry groups (OIDC with --oidc-groups-claim), with their display names. */
  oidcSources?: Map<string, string>;
  /** Asks the provider for a signed-in user's current groups (OidcLogins.refreshGroups). */
  refreshOidc?: (source: string, secrets: OidcSecrets) => Promise<{ groups: string[]; secrets: OidcSecrets }>;
  /** Seals the sign-in's tokens at rest; without it they are not kept and OIDC groups lapse at the bound. */
  box?: SecretBox;
  directory?: GroupDirectory;
  /** The directory failed to answer (log and count it; the relay serves on). */
  onDirectoryError?: (err: unknown) => void;
}

interface Cached {
  groups: string[];
  at: number;
}

export class IdpGroups {
  readonly #o: IdpGroupsOptions;
  readonly refreshMs: number;
  // Directory answers per email, trusted for refreshMs; also the previous answer, to notice removals.
  readonly #directory = new Map<string, Cached>();
  readonly #inflight = new Map<string, Promise<Cached>>();
  // A failed lookup is not retried for a few seconds, so a dead directory or provider does not
  // hold every request for its timeout: per email (e:) or sign-in (s:), and for everyone when
  // the directory itself failed.
  readonly #failed = new Map<string, { err: unknown; until: number }>();
  #down: { err: unknown; until: number } | undefined;
  readonly #refreshing = new Map<string, Promise<string[]>>();

  constructor(opts: IdpGroupsOptions) {
    this.#o = opts;
    this.refreshMs = opts.refreshMs ?? DEFAULT_IDP_REFRESH_MS;
  }

  /** Whether any source is configured (otherwise assertions carry no `groups` claim and idp: matches nobody). */
  get enabled(): boolean {
    return (this.#o.oidcSources?.size ?? 0) > 0 || this.#o.directory !== undefined;
  }

  /** Stores the groups an OIDC sign-in brought, for the new relay session (its family shares them). */
  async recordLogin(rootSessionId: string, source: string, groups: string[], secrets?: OidcSecrets): Promise<void> {
    const keep = secrets && (secrets.refreshToken || secrets.accessToken) && this.#o.box;
    const row = { session_id: rootSessionId, source, groups: JSON.stringify(groups), refreshed_at: nowIso(this.#o.clock.now()), secrets_sealed: keep ? this.#o.box!.seal(JSON.stringify(secrets), `idp:${rootSessionId}`) : null };
    await this.#o.store.db
      .insertInto('idp_session_groups')
      .values(row)
      .onConflict((oc) => oc.column('session_id').doUpdateSet({ source: row.source, groups: row.groups, refreshed_at: row.refreshed_at, secrets_sealed: row.secrets_sealed }))
      .execute();
  }

  /** The visitor's groups from every configured source, with what could not be confirmed. */
  async lookup(who: IdpSubject): Promise<IdpLookup> {
    const groups = new Set<string>();
    const problems: string[] = [];
    const details: string[] = [];
    const now = this.#o.clock.now();
    if (who.rootSessionId && this.#o.oidcSources?.size) {
      const row = await this.#o.store.db.selectFrom('idp_session_groups').selectAll().where('session_id', '=', who.rootSessionId).executeTakeFirst();
      if (row) {
        const name = this.#o.oidcSources.get(row.source) ?? row.source;
        if (Date.parse(row.refreshed_at) + this.refreshMs > now) for (const g of JSON.parse(row.groups) as string[]) groups.add(g);
        else {
          try {
            for (const g of await this.#refreshOidc(row, who)) groups.add(g);
          } catch (err) {
            problems.push(`your groups from ${name} must be confirmed every ${Math.round(this.refreshMs / 1000)} s and tunn could not confirm them: sign out and sign in again with ${name}`);
            details.push(`the groups of ${who.email} from ${name}, last confirmed at ${row.refreshed_at}, could not be confirmed again: ${err ? errorMessage(err) : 'no refresh or access token was kept for this sign-in'}`);
          }
        }
      }
    }
    if (this.#o.directory) {
      try {
        for (const g of (await this.#fromDirectory(who, now)).groups) groups.add(g);
      } catch (err) {
        // The directory's host, port and base DNs are the operator's business, not a visitor's.
        const userSpecific = (err as { userSpecific?: unknown } | null)?.userSpecific === true;
        problems.push(userSpecific ? "your organisation's directory does not give one clear answer for your email, so tunn cannot confirm your groups: ask its administrator, quoting the request id" : "tunn cannot reach your organisation's directory to confirm your groups right now; try again in a minute");
        details.push(`${this.#o.directory.label} could not confirm the groups of ${who.email}: ${errorMessage(err)}`);
      }
    }
    return { groups: [...groups].sort(), problems, details };
  }

  /** What the relay knows for an account (`tunn whoami`): the directory's answer, and the groups of its latest live sign-in. */
  async knownFor(accountId: string, email: string): Promise<IdpLookup> {
    const latest = this.#o.oidcSources?.size
      ? await this.#o.store.db
          .selectFrom('sessions')
          .innerJoin('idp_session_groups', 'idp_session_groups.session_id', 'sessions.id')
          .select('sessions.id')
          .where('sessions.account_id', '=', accountId)
          .where('sessions.parent_id', 'is', null)
          .where('sessions.revoked_at', 'is', null)
          .where('sessions.expires_at', '>', nowIso(this.#o.clock.now()))
          .orderBy('sessions.created_at', 'desc')
          .executeTakeFirst()
      : undefined;
    return this.lookup({ email, rootSessionId: latest?.id, accountId });
  }

  /** Forgets cached directory answers (tests, and after the operator changes the directory). */
  clearCache(): void {
    this.#directory.clear();
  }

  /** Confirms a sign-in's groups with its provider; throws (undefined: nothing to refresh with) when they cannot be. */
  #refreshOidc(row: { session_id: string; source: string; groups: string; secrets_sealed: string | null }, who: IdpSubject): Promise<string[]> {
    const refresh = this.#o.refreshOidc;
    if (!refresh || !row.secrets_sealed || !this.#o.box) return Promise.reject(undefined);
    // A provider that just failed to confirm is not asked again for a few seconds for this sign-in.
    const failed = this.#failed.get(`s:${row.session_id}`);
    if (failed && failed.until > this.#o.clock.now()) return Promise.reject(failed.err);
    let pending = this.#refreshing.get(row.session_id);
    if (!pending) {
      const box = this.#o.box;
      pending = (async () => {
        const secrets = JSON.parse(box.open(row.secrets_sealed!, `idp:${row.session_id}`).toString('utf8')) as OidcSecrets;
        const fresh = await refresh(row.source, secrets);
        await this.recordLogin(row.session_id, row.source, fresh.groups, fresh.secrets);
        this.#noticeRemovals(who.email, JSON.parse(row.groups) as string[], fresh.groups, who.accountId, this.#o.oidcSources?.get(row.source) ?? row.source);
        return fresh.groups;
      })()
        .catch((err: unknown) => {
          this.#failed.set(`s:${row.session_id}`, { err, until: this.#o.clock.now() + Math.min(5000, this.refreshMs) });
          throw err;
        })
        .finally(() => this.#refreshing.delete(row.session_id));
      this.#refreshing.set(row.session_id, pending);
    }
    return pending;
  }

  async #fromDirectory(who: IdpSubject, now: number): Promise<Cached> {
    const email = who.email.toLowerCase();
    const hit = this.#directory.get(email);
    if (hit && hit.at + this.refreshMs > now) return hit;
    const failed = this.#failed.get(`e:${email}`) ?? this.#down;
    if (failed && failed.until > now) throw failed.err;
    let pending = this.#inflight.get(email);
    if (!pending) {
      const dir = this.#o.directory!;
      pending = dir
        .groupsOf(email)
        .then((raw) => {
          const fresh: Cached = { groups: [...new Set(raw.map(normaliseIdpGroup))].sort(), at: this.#o.clock.now() };
          const before = this.#directory.get(email);
          this.#directory.set(email, fresh);
          this.#failed.delete(`e:${email}`);
          this.#down = undefined;
          if (this.#directory.size > 50_000) this.#directory.clear();
          if (before) this.#noticeRemovals(email, before.groups, fresh.groups, who.accountId, dir.label);
          return fresh;
        })
        .catch((err: unknown) => {
          this.#o.onDirectoryError?.(err);
          const until = { err, until: this.#o.clock.now() + Math.min(5000, this.refreshMs) };
          if ((err as { userSpecific?: unknown } | null)?.userSpecific === true) this.#failed.set(`e:${email}`, until);
          else this.#down = until;
          if (this.#failed.size > 10_000) this.#failed.clear();
          throw err;
        })
        .finally(() => this.#inflight.delete(email));
      this.#inflight.set(email, pending);
    }
    return pending;
  }

  #noticeRemovals(email: string, before: string[], after: string[], accountId: string | undefined, source: string): void {
    const now = new Set(after);
    for (const g of before) {
      if (now.has(g)) continue;
      void this.#o.events.record({ kind: 'idp_group_removed', email, accountId, detail: `${email} is no longer in the group "${g}" of ${source}` });
    }
  }
}
