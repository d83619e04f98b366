import { createSecureContext, type SecureContext } from 'node:tls';
import type { IssuedCertificate } from './issuer.ts';

// Where certificates live and how work on one is serialised (certmagic's storage.go, narrowed
// to what the manager needs). Implementations: the relay's database (kysely-storage.ts, with
// kysely-locker.ts), and files (file-storage.ts, file-locker.ts) for an agent that runs ACME
// itself. The manager only ever talks to these two interfaces.

export interface StoredCertificate {
  /** certificate_ref: changes with every issuance. */
  id: string;
  /** Key name: the first SAN (`*.tunn.mycompany.com`). */
  name: string;
  names: string[];
  issuer: string;
  chainPem: string;
  keyPem: string;
  notBefore: number;
  notAfter: number;
  renewalWindow?: { start: number; end: number };
  ariCheckedAt?: number;
}

export type CertificateSummary = Omit<StoredCertificate, 'keyPem' | 'chainPem'>;

/**
 * Certificate storage. Contract:
 * - Implementations MUST be safe for concurrent use, also by several processes sharing one
 *   storage (relays on one database, agents on one directory).
 * - One current certificate per key name. save() replaces it atomically: a concurrent load()
 *   sees the old certificate or the new one, never a mix of the two (chain of one, key of the
 *   other). save() gives the new certificate a fresh id.
 * - load() returns the current certificate or undefined; it never returns one it cannot open
 *   (a sealed key that does not open is an error, not undefined).
 * - Private keys are protected at rest (sealed, or a file only the owner can read).
 * - list() returns every stored certificate without its key and chain, ordered by name.
 * - setRenewalWindow() changes the certificate under `name` only while its id is still `id`
 *   (a renewal in between wins); delete() of a missing name is not an error.
 * Storage holds no lock of its own: work that must not run twice (an ACME order) takes a
 * Locker first.
 */
export interface CertStorage {
  save(name: string, cert: IssuedCertificate, now?: number): Promise<StoredCertificate>;
  load(name: string): Promise<StoredCertificate | undefined>;
  list(): Promise<CertificateSummary[]>;
  setRenewalWindow(name: string, id: string, window: { start: number; end: number } | undefined, checkedAt: number): Promise<void>;
  delete(name: string): Promise<void>;
}

/** Gives a held lock back; calling it again is a no-op. */
export type Unlock = () => Promise<void>;

/**
 * Mutual exclusion across everyone sharing one storage (certmagic's Locker). Contract:
 * - lock(key) resolves once the caller holds `key`; while it holds it, no other caller of any
 *   Locker on the same shared backend (another relay on the same database, another process on
 *   the same directory) does. It waits as long as it takes, or until `signal` aborts (then it
 *   rejects and holds nothing).
 * - Implementations MUST be safe for concurrent use, and a lock MUST NOT outlive its holder
 *   for long: a holder that dies (crash, lost database session) loses its locks, at once
 *   (a PostgreSQL session lock) or once they are stale (a lock file not refreshed for a while).
 *   A lock is therefore a strong hint, not a guarantee: the work it guards must stay correct,
 *   if wasteful, when run twice (an ACME order is; storage save() is atomic).
 * - Locks are not re-entrant: locking a key the caller holds waits for itself.
 */
export interface Locker {
  lock(key: string, opts?: { signal?: AbortSignal }): Promise<Unlock>;
}

export function secureContextFor(cert: Pick<StoredCertificate, 'chainPem' | 'keyPem'>): SecureContext {
  return createSecureContext({ cert: cert.chainPem, key: cert.keyPem });
}
