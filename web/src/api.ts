import { ApiError, createApiClient, pathParams, type CertificateView, type SessionInfo } from '../../src/api/client.ts';

// The console's one door to the relay: /v1 through the typed Hono client the CLI's types come
// from, with the relay's session cookie (same origin only) and the CSRF token of GET /v1/session
// on every call. Every answer that is not a success becomes an ApiError carrying the API's own
// code and message; a 401 sends the browser to sign in and back to the page it was on.
//
// Everything the console knows about the API's shapes is in this file, so a change of the
// contract touches only it.

export { ApiError };

let csrf: string | null = null;

// The same typed client as the CLI's (src/api/client.ts), over the browser's fetch with the session cookie.
const client = createApiClient(location.origin, {
  fetch: (input, init) => fetch(input, { ...init, credentials: 'same-origin' }),
  headers: (): Record<string, string> => (csrf ? { 'x-tunn-csrf': csrf } : {}),
});

/** Where the relay's sign-in page sends the browser back to: this very page. */
export function signInUrl(): string {
  return `/login?return=${encodeURIComponent(location.pathname + location.search)}`;
}

interface JsonResponse {
  ok: boolean;
  status: number;
  json(): Promise<unknown>;
}
type Body<R> = R extends { json(): Promise<infer J> } ? J : never;

/** The JSON of a successful answer; an ApiError with the API's message otherwise. */
async function call<R extends JsonResponse>(request: () => Promise<R>): Promise<Body<R>> {
  let res: R;
  try {
    res = await request();
  } catch (err) {
    throw new ApiError(0, 'UNREACHABLE', `cannot reach the relay (${err instanceof Error ? err.message : String(err)}); check your connection and reload`);
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  if (res.ok) return body as Body<R>;
  const e = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof e?.code === 'string' ? e.code : `HTTP_${res.status}`;
  const message = typeof e?.message === 'string' ? e.message : `the relay answered HTTP ${res.status} without an explanation`;
  if (res.status === 401) {
    // Signed out or expired: sign in again and come back here.
    location.assign(signInUrl());
    throw new ApiError(401, code, `${message} (taking you to sign in…)`);
  }
  throw new ApiError(res.status, code, message);
}

// ---- session ---------------------------------------------------------------------------

export type { SessionInfo };

export async function loadSession(): Promise<SessionInfo> {
  const s = (await call(() => client.v1.session.$get())) as SessionInfo;
  csrf = s.csrf;
  return s;
}

/** Signs this browser out (DELETE /v1/session: the relay and every tunnel host it was handed to). */
export async function signOut(): Promise<void> {
  await call(() => client.v1.session.$delete());
  csrf = null;
}

// ---- tunnels ---------------------------------------------------------------------------

export interface TunnelRow {
  host: string;
  url: string;
  name: string;
  kind: string;
  domain?: string;
  owner?: string;
  /** Who may reach it: allow-list entries (groups expanded where the API does). */
  allow: string[];
  public?: boolean;
  agents: number;
  since: string;
  requests: number;
  bytesIn?: number;
  bytesOut?: number;
}

type TunnelWire = Partial<TunnelRow> & { allowed?: string[] };

export async function listTunnels(): Promise<TunnelRow[]> {
  const r = (await call(() => client.v1.tunnels.$get())) as { tunnels: TunnelWire[] };
  return r.tunnels.map((t) => ({ host: t.host ?? '', url: t.url ?? '', name: t.name ?? '', kind: t.kind ?? 'http', domain: t.domain, owner: t.owner, allow: t.allow ?? t.allowed ?? [], public: t.public, agents: t.agents ?? 0, since: t.since ?? '', requests: t.requests ?? 0, bytesIn: t.bytesIn, bytesOut: t.bytesOut }));
}

// What GET /v1/tunnels/events may call a change; any of them means "fetch the list again".
const TUNNEL_EVENT_NAMES = ['snapshot', 'up', 'updated', 'down'];

/**
 * Watches the live stream of tunnel changes (server-sent events; the cookie goes along, same
 * origin). `onState('unavailable')` when the relay does not offer it or it broke: the page then
 * fetches the list itself now and then. Returns the function that stops watching.
 */
export function watchTunnels(onChange: () => void, onState: (state: 'live' | 'unavailable') => void): () => void {
  let es: EventSource;
  try {
    es = new EventSource('/v1/tunnels/events');
  } catch {
    onState('unavailable');
    return () => {};
  }
  es.onopen = () => onState('live');
  es.onmessage = onChange;
  for (const name of TUNNEL_EVENT_NAMES) es.addEventListener(name, onChange);
  es.onerror = () => {
    // EventSource retries a dropped stream by itself; a refused one (404, 401…) it closes.
    if (es.readyState === EventSource.CLOSED) onState('unavailable');
  };
  return () => es.close();
}

// ---- groups ----------------------------------------------------------------------------

export interface GroupRow {
  name: string;
  emails: string[];
  createdAt: string;
  updatedAt: string;
}

export async function listGroups(): Promise<GroupRow[]> {
  return (await call(() => client.v1.groups.$get())).groups;
}
export async function createGroup(name: string, emails: string[]): Promise<GroupRow> {
  return (await call(() => client.v1.groups.$post({ json: { name, emails } }))).group;
}
export async function addMembers(name: string, emails: string[]): Promise<GroupRow> {
  return (await call(() => client.v1.groups[':name'].members.$post({ param: pathParams({ name }), json: { emails } }))).group;
}
export async function removeMember(name: string, email: string): Promise<GroupRow> {
  return (await call(() => client.v1.groups[':name'].members[':email'].$delete({ param: pathParams({ name, email }) }))).group;
}
export async function deleteGroup(name: string): Promise<void> {
  await call(() => client.v1.groups[':name'].$delete({ param: pathParams({ name }) }));
}

// ---- domains ---------------------------------------------------------------------------

export interface DnsRecord {
  name: string;
  type: string;
  value: string;
  purpose: string;
}
export interface RecordCheck extends DnsRecord {
  ok: boolean;
  found: string[];
  problem?: string;
}
export interface DomainRow {
  domain: string;
  owner: string;
  role: 'owner' | 'shared';
  shares: string[];
  status: 'verified' | 'pending_verification';
  verifiedAt: string | null;
  createdAt: string;
  tls: { mode: string; status: string; notAfter: string | null; lastError: string | null; nextRetryAt: string | null };
  records?: DnsRecord[];
}
export interface Verification {
  domain: string;
  verified: boolean;
  records: RecordCheck[];
  problems: string[];
}

export async function listDomains(): Promise<DomainRow[]> {
  return ((await call(() => client.v1.domains.$get())) as { domains: DomainRow[] }).domains;
}
export async function addDomain(domain: string): Promise<{ domain: DomainRow; verification?: Verification }> {
  return (await call(() => client.v1.domains.$post({ json: { domain, verify: true } }))) as { domain: DomainRow; verification?: Verification };
}
export async function verifyDomain(domain: string): Promise<Verification> {
  return (await call(() => client.v1.domains[':domain'].verify.$post({ param: pathParams({ domain }) }))) as Verification;
}
export async function shareDomain(domain: string, who: string[]): Promise<DomainRow> {
  return ((await call(() => client.v1.domains[':domain'].shares.$post({ param: pathParams({ domain }), json: { with: who } }))) as { domain: DomainRow }).domain;
}
export async function unshareDomain(domain: string, who: string): Promise<DomainRow> {
  return ((await call(() => client.v1.domains[':domain'].shares[':who'].$delete({ param: pathParams({ domain, who }) }))) as { domain: DomainRow }).domain;
}
/** Whether adding `domain` would be accepted: the API's refusal as an ApiError (POST /v1/domains/validate), nothing changed. */
export async function validateDomain(domain: string): Promise<void> {
  await call(() => client.v1.domains.validate.$post({ json: { domain } }));
}
/** Whether sharing `domain` with `who` would be accepted, the same way. */
export async function validateShare(domain: string, who: string[]): Promise<void> {
  await call(() => client.v1.domains.validate.$post({ json: { domain, share: who } }));
}
export async function deleteDomain(domain: string): Promise<void> {
  await call(() => client.v1.domains[':domain'].$delete({ param: pathParams({ domain }) }));
}

// ---- certificates ----------------------------------------------------------------------

/** A certificate as GET /v1/certificates describes it (lifecycle state, issuer, expiry, where TLS ends). */
export type CertificateRow = CertificateView;

export async function listCertificates(): Promise<CertificateRow[]> {
  return (await call(() => client.v1.certificates.$get())).certificates;
}

// ---- tokens ----------------------------------------------------------------------------

export interface TokenRow {
  id: string;
  name: string;
  kind: string;
  email?: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
}

/** Your tokens; with `all`, every account's (relay operators only: the API refuses anyone else). */
export async function listTokens(all = false): Promise<TokenRow[]> {
  return ((await call(() => client.v1.tokens.$get({ query: all ? { all: '1' } : {} }))) as { tokens: TokenRow[] }).tokens;
}
/** The new token's secret comes back once: the page shows it and keeps it nowhere. */
export async function createToken(name: string): Promise<{ token: string; id: string; name: string }> {
  return await call(() => client.v1.tokens.$post({ json: { name } }));
}
export async function revokeToken(id: string): Promise<void> {
  await call(() => client.v1.tokens[':id'].$delete({ param: pathParams({ id }) }));
}

// ---- events ----------------------------------------------------------------------------

export interface EventRow {
  id: string;
  at: string;
  kind: string;
  ip: string | null;
  email: string | null;
  tunnel: string | null;
  detail: string;
  count: number;
}
export interface EventFilter {
  kind?: string;
  tunnel?: string;
  email?: string;
  since?: string;
  /** '1': every account's events (relay operators only; the API refuses anyone else). */
  all?: string;
}
export const EVENTS_PAGE = 50;

/** One page of events, newest first; `next` is the cursor of the following page when there is one. */
export async function listEvents(filter: EventFilter, cursor?: string): Promise<{ events: EventRow[]; next: string | null }> {
  const query: Record<string, string> = { limit: String(EVENTS_PAGE) };
  for (const [k, v] of Object.entries(filter)) if (v) query[k] = v;
  if (cursor) query.cursor = cursor;
  const r = (await call(() => client.v1.events.$get({ query }))) as { events: EventRow[]; next?: string | null };
  return { events: r.events, next: r.next ?? null };
}
