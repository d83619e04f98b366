import type { CertFailurePolicy } from '../certs/retry.ts';
import { TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import { nowIso, randomId, randomToken } from '../lib/ids.ts';
import type { DomainsTable, TlsStatus } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import { normalizeCustomDomain } from './names.ts';

// Custom domains in the store (seed 002 "Domain Storage", seed 001 lifecycle columns). The
// API and CLI call these; the lifecycle columns follow the certificate manager's changes
// (cert-lifecycle.ts), the drift probe and the cert-events endpoint.

export interface Domain {
  id: string;
  accountId: string;
  domain: string;
  acmeIdentifier: string;
  /** "@company.com" entries and emails (seed 002 sharing). */
  shares: string[];
  verificationToken: string;
  verifiedAt: string | null;
  /** terminate: the relay's wildcard `*.D`; passthrough: upstream; agent: TLS ends at agents, no relay wildcard (issue 12). */
  tlsMode: 'terminate' | 'passthrough' | 'agent';
  /** With tlsMode agent (`--allow-relay-fallback`): the relay may terminate a live agent tunnel's name with a per-name certificate until its agent is ready. */
  allowRelayFallback: boolean;
  tlsStatus: TlsStatus;
  tlsNotAfter: string | null;
  tlsLastError: string | null;
  tlsLastCheckedAt: string | null;
  certificateRef: string | null;
  certFailurePolicy: CertFailurePolicy;
  certFailureCount: number;
  certNextRetryAt: string | null;
  createdAt: string;
}

export function toDomain(r: DomainsTable): Domain {
  return {
    id: r.id,
    accountId: r.account_id,
    domain: r.domain,
    acmeIdentifier: r.acme_identifier,
    shares: JSON.parse(r.shares) as string[],
    verificationToken: r.verification_token,
    verifiedAt: r.verified_at,
    tlsMode: r.tls_mode === 'passthrough' ? 'passthrough' : r.tls_mode.startsWith('agent') ? 'agent' : 'terminate',
    allowRelayFallback: r.tls_mode === AGENT_WITH_FALLBACK,
    tlsStatus: r.tls_status,
    tlsNotAfter: r.tls_not_after,
    tlsLastError: r.tls_last_error,
    tlsLastCheckedAt: r.tls_last_checked_at,
    certificateRef: r.certificate_ref,
    certFailurePolicy: r.cert_failure_policy === 'manual' ? 'manual' : 'backoff',
    certFailureCount: r.cert_failure_count,
    certNextRetryAt: r.cert_next_retry_at,
    createdAt: r.created_at,
  };
}

/** tls_mode of a domain added with `--terminate-at agent --allow-relay-fallback` (the column is text: terminate | passthrough | agent | this). */
const AGENT_WITH_FALLBACK = 'agent+relay-fallback';

export interface CreateDomainInput {
  accountId: string;
  acmeId: string;
  domain: string;
  relayDomain: string;
  tlsMode?: 'terminate' | 'passthrough' | 'agent';
  allowRelayFallback?: boolean;
  failurePolicy?: CertFailurePolicy;
}

/**
 * Registers `domain` for an account (unverified). Returns the existing row when the same
 * account adds it again; CONFLICT when another account holds it.
 */
export async function createDomain(store: Store, input: CreateDomainInput, now = Date.now()): Promise<Domain> {
  const domain = normalizeCustomDomain(input.domain, input.relayDomain);
  const existing = await domainByName(store, domain);
  if (existing) {
    if (existing.accountId === input.accountId) return existing;
    throw new TunnError('CONFLICT', `${domain} is already registered to another account`);
  }
  const passthrough = input.tlsMode === 'passthrough';
  const row: DomainsTable = {
    id: randomId(16),
    account_id: input.accountId,
    domain,
    acme_identifier: input.acmeId,
    shares: '[]',
    verification_token: randomToken(18),
    verified_at: null,
    tls_mode: passthrough ? 'passthrough' : input.tlsMode === 'agent' ? (input.allowRelayFallback ? AGENT_WITH_FALLBACK : 'agent') : 'terminate',
    // A domain whose TLS ends at agents gets no relay certificate: it waits for tunnels, not for an issuance.
    tls_status: passthrough ? 'passthrough_unverified' : input.tlsMode === 'agent' ? 'pending_route' : 'pending_issue',
    tls_not_after: null,
    tls_last_error: null,
    tls_last_checked_at: null,
    certificate_ref: null,
    cert_failure_policy: input.failurePolicy ?? 'backoff',
    cert_failure_count: 0,
    cert_next_retry_at: null,
    created_at: nowIso(now),
    cert_event_at: null,
  };
  try {
    await store.db.insertInto('domains').values(row).execute();
  } catch (err) {
    const again = await domainByName(store, domain);
    if (again && again.accountId !== input.accountId) throw new TunnError('CONFLICT', `${domain} is already registered to another account`, { cause: err });
    if (again) return again;
    throw err;
  }
  return toDomain(row);
}

export async function domainByName(store: Store, domain: string): Promise<Domain | undefined> {
  const r = await store.db.selectFrom('domains').selectAll().where('domain', '=', normalizeHost(domain)).executeTakeFirst();
  return r && toDomain(r);
}

export async function domainsForAccount(store: Store, accountId: string): Promise<Domain[]> {
  const rows = await store.db.selectFrom('domains').selectAll().where('account_id', '=', accountId).orderBy('domain').execute();
  return rows.map(toDomain);
}

export async function listDomains(store: Store): Promise<Domain[]> {
  return (await store.db.selectFrom('domains').selectAll().orderBy('domain').execute()).map(toDomain);
}

export async function markDomainVerified(store: Store, domain: string, now = Date.now()): Promise<void> {
  await store.db.updateTable('domains').set({ verified_at: nowIso(now) }).where('domain', '=', domain).where('verified_at', 'is', null).execute();
}

export async function setDomainShares(store: Store, domain: string, shares: string[]): Promise<void> {
  await updateDomainShares(store, domain, () => shares);
}

/**
 * Read-modify-write of a domain's share list in one transaction (row-locked on PostgreSQL),
 * so concurrent share/unshare calls do not lose each other's changes. Returns the new list.
 */
export async function updateDomainShares(store: Store, domain: string, change: (shares: string[]) => string[]): Promise<string[]> {
  return store.db.transaction().execute(async (trx) => {
    let q = trx.selectFrom('domains').select('shares').where('domain', '=', domain);
    if (store.dialect === 'postgres') q = q.forUpdate();
    const row = await q.executeTakeFirst();
    const next = [...new Set(change(row ? (JSON.parse(row.shares) as string[]) : []))];
    await trx.updateTable('domains').set({ shares: JSON.stringify(next) }).where('domain', '=', domain).execute();
    return next;
  });
}

export async function deleteDomain(store: Store, domain: string): Promise<void> {
  await store.db.deleteFrom('domains').where('domain', '=', domain).execute();
}

/** The lifecycle columns the cert manager, the probe and the cert-events endpoint write. */
export type DomainTlsPatch = Partial<
  Pick<DomainsTable, 'tls_status' | 'tls_not_after' | 'tls_last_error' | 'tls_last_checked_at' | 'certificate_ref' | 'cert_failure_count' | 'cert_next_retry_at' | 'cert_failure_policy'>
>;

export async function updateDomainTls(store: Store, domain: string, patch: DomainTlsPatch): Promise<void> {
  if (Object.keys(patch).length === 0) return;
  await store.db.updateTable('domains').set(patch).where('domain', '=', domain).execute();
}

/**
 * Applies a cert event's patch if it was signed (`signedAt`, Unix seconds) after the last one
 * applied to `domain`; false when it was not (a replay, or an older event arriving late) or the
 * domain is gone. One conditional UPDATE: a restart forgets nothing, and two relays of a
 * cluster receiving the same captured request cannot both apply it.
 */
export async function applyCertEventPatch(store: Store, domain: string, patch: DomainTlsPatch, signedAt: number): Promise<boolean> {
  const r = await store.db
    .updateTable('domains')
    .set({ ...patch, cert_event_at: signedAt })
    .where('domain', '=', domain)
    .where((eb) => eb.or([eb('cert_event_at', 'is', null), eb('cert_event_at', '<', signedAt)]))
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}
