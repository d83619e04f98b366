import type { Clock } from '../lib/clock.ts';
import type { Store } from '../store/store.ts';

// Who a live connection acts for, and whether that credential still holds. The gate names the
// principal in every allow decision; the relay keeps it with the connection (and an agent
// session keeps its token's jti) and re-checks them all against the store on a short period,
// so a revocation made anywhere — this relay, the CLI, another relay on the same PostgreSQL —
// also ends connections that no longer pass through the gate (upgrades, long responses, idle
// keep-alives).

/** The credential a request was allowed with: a browser session (by id) or a token (by jti). */
export type Principal = { via: 'session'; sessionId: string; /** The relay session it was handed off from (IdP groups live there). */ rootSessionId?: string; accountId: string; email: string } | { via: 'token'; jti: string; accountId: string; email: string; /** The key that signed the token, when known: retiring it cuts the connection. */ kid?: string };

/** One string per credential, for sets and maps. */
export function principalKey(p: Principal): string {
  return p.via === 'session' ? `s:${p.sessionId}` : `t:${p.jti}`;
}

// Bound parameters per query (SQLite's limit is 32766, PostgreSQL's 65535; stay well below).
const CHUNK = 500;

/**
 * The keys (principalKey) of the principals whose credential no longer holds: a session
 * revoked (sign-out, `revokeFamily`, `revokeAccount`), expired or gone; a token revoked,
 * expired or gone. Asks the store with one query per kind per 500 credentials.
 */
export async function findRevoked(store: Store, clock: Clock, principals: Iterable<Principal>): Promise<Set<string>> {
  const sessionIds = new Set<string>();
  const jtis = new Set<string>();
  for (const p of principals) {
    if (p.via === 'session') sessionIds.add(p.sessionId);
    else jtis.add(p.jti);
  }
  const now = clock.now();
  const revoked = new Set<string>();
  for (const ids of chunks(sessionIds)) {
    const rows = await store.db.selectFrom('sessions').select(['id', 'revoked_at', 'expires_at']).where('id', 'in', ids).execute();
    const live = new Set(rows.filter((r) => r.revoked_at === null && Date.parse(r.expires_at) > now).map((r) => r.id));
    for (const id of ids) if (!live.has(id)) revoked.add(`s:${id}`);
  }
  for (const ids of chunks(jtis)) {
    const rows = await store.db.selectFrom('tokens').select(['jti', 'revoked_at', 'expires_at']).where('jti', 'in', ids).execute();
    const live = new Set(rows.filter((r) => r.revoked_at === null && (r.expires_at === null || Date.parse(r.expires_at) > now)).map((r) => r.jti));
    for (const id of ids) if (!live.has(id)) revoked.add(`t:${id}`);
  }
  return revoked;
}

function* chunks(s: Set<string>): Generator<string[]> {
  const all = [...s];
  for (let i = 0; i < all.length; i += CHUNK) yield all.slice(i, i + CHUNK);
}
