import { createSecureContext, type SecureContext } from 'node:tls';
import { randomId, nowIso } from '../lib/ids.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { Store } from '../store/store.ts';
import type { IssuedCertificate } from './issuer.ts';

// Certificate storage in the store (certmagic's Storage, narrowed to what we need). One
// current certificate per name; the private key sealed with the relay's SecretBox and bound
// to the row's name, so a sealed key copied to another row does not open.

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

const keyContext = (name: string) => `certificate:${name}`;
const ms = (s: string | null) => (s ? Date.parse(s) : undefined);

/**
 * Storage contract: save() replaces the name's certificate atomically (readers see the old or
 * the new one, never a mix); load() returns the current one or undefined; safe for concurrent
 * use by several relays sharing one database.
 */
export class CertStorage {
  readonly #store: Store;
  readonly #box: SecretBox;

  constructor(store: Store, box: SecretBox) {
    this.#store = store;
    this.#box = box;
  }

  async save(name: string, cert: IssuedCertificate, now = Date.now()): Promise<StoredCertificate> {
    const row = {
      id: randomId(20),
      name,
      names: JSON.stringify(cert.names),
      issuer: cert.issuer,
      chain_pem: cert.chainPem,
      key_sealed: this.#box.seal(cert.keyPem, keyContext(name)),
      not_before: nowIso(cert.notBefore),
      not_after: nowIso(cert.notAfter),
      ari_window_start: null,
      ari_window_end: null,
      ari_checked_at: null,
      created_at: nowIso(now),
    };
    await this.#store.db
      .insertInto('certificates')
      .values(row)
      .onConflict((oc) => oc.column('name').doUpdateSet({ ...row, name: undefined }))
      .execute();
    return { id: row.id, name, names: cert.names, issuer: cert.issuer, chainPem: cert.chainPem, keyPem: cert.keyPem, notBefore: cert.notBefore, notAfter: cert.notAfter };
  }

  async load(name: string): Promise<StoredCertificate | undefined> {
    const r = await this.#store.db.selectFrom('certificates').selectAll().where('name', '=', name).executeTakeFirst();
    if (!r) return undefined;
    return {
      id: r.id,
      name: r.name,
      names: JSON.parse(r.names) as string[],
      issuer: r.issuer,
      chainPem: r.chain_pem,
      keyPem: this.#box.openString(r.key_sealed, keyContext(r.name)),
      notBefore: Date.parse(r.not_before),
      notAfter: Date.parse(r.not_after),
      renewalWindow: r.ari_window_start && r.ari_window_end ? { start: Date.parse(r.ari_window_start), end: Date.parse(r.ari_window_end) } : undefined,
      ariCheckedAt: ms(r.ari_checked_at),
    };
  }

  async list(): Promise<CertificateSummary[]> {
    const rows = await this.#store.db
      .selectFrom('certificates')
      .select(['id', 'name', 'names', 'issuer', 'not_before', 'not_after', 'ari_window_start', 'ari_window_end', 'ari_checked_at'])
      .orderBy('name')
      .execute();
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      names: JSON.parse(r.names) as string[],
      issuer: r.issuer,
      notBefore: Date.parse(r.not_before),
      notAfter: Date.parse(r.not_after),
      renewalWindow: r.ari_window_start && r.ari_window_end ? { start: Date.parse(r.ari_window_start), end: Date.parse(r.ari_window_end) } : undefined,
      ariCheckedAt: ms(r.ari_checked_at),
    }));
  }

  async setRenewalWindow(id: string, window: { start: number; end: number } | undefined, checkedAt: number): Promise<void> {
    await this.#store.db
      .updateTable('certificates')
      .set({ ari_window_start: window ? nowIso(window.start) : null, ari_window_end: window ? nowIso(window.end) : null, ari_checked_at: nowIso(checkedAt) })
      .where('id', '=', id)
      .execute();
  }

  async delete(name: string): Promise<void> {
    await this.#store.db.deleteFrom('certificates').where('name', '=', name).execute();
  }
}

export function secureContextFor(cert: Pick<StoredCertificate, 'chainPem' | 'keyPem'>): SecureContext {
  return createSecureContext({ cert: cert.chainPem, key: cert.keyPem });
}
