import { randomId, nowIso } from '../lib/ids.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { CertificatesTable } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import type { IssuedCertificate } from './issuer.ts';
import type { CertificateSummary, CertStorage, StoredCertificate } from './storage.ts';

// Certificates in the relay's database (SQLite or PostgreSQL): one row per name; the private
// key sealed with the relay's SecretBox and bound to the row's name, so a sealed key copied to
// another row does not open. One upsert per save: atomic on both databases.

const keyContext = (name: string) => `certificate:${name}`;
const ms = (s: string | null) => (s ? Date.parse(s) : undefined);

export class KyselyCertStorage implements CertStorage {
  readonly #store: Store;
  readonly #box: SecretBox;

  constructor(store: Store, box: SecretBox) {
    this.#store = store;
    this.#box = box;
  }

  async save(name: string, cert: IssuedCertificate, now = Date.now()): Promise<StoredCertificate> {
    const row: CertificatesTable = {
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
    return { ...summary(r), chainPem: r.chain_pem, keyPem: this.#box.openString(r.key_sealed, keyContext(r.name)) };
  }

  async list(): Promise<CertificateSummary[]> {
    const rows = await this.#store.db
      .selectFrom('certificates')
      .select(['id', 'name', 'names', 'issuer', 'not_before', 'not_after', 'ari_window_start', 'ari_window_end', 'ari_checked_at'])
      .orderBy('name')
      .execute();
    return rows.map(summary);
  }

  async setRenewalWindow(name: string, id: string, window: { start: number; end: number } | undefined, checkedAt: number): Promise<void> {
    await this.#store.db
      .updateTable('certificates')
      .set({ ari_window_start: window ? nowIso(window.start) : null, ari_window_end: window ? nowIso(window.end) : null, ari_checked_at: nowIso(checkedAt) })
      .where('name', '=', name)
      .where('id', '=', id)
      .execute();
  }

  async delete(name: string): Promise<void> {
    await this.#store.db.deleteFrom('certificates').where('name', '=', name).execute();
  }
}

function summary(r: Pick<CertificatesTable, 'id' | 'name' | 'names' | 'issuer' | 'not_before' | 'not_after' | 'ari_window_start' | 'ari_window_end' | 'ari_checked_at'>): CertificateSummary {
  return {
    id: r.id,
    name: r.name,
    names: JSON.parse(r.names) as string[],
    issuer: r.issuer,
    notBefore: Date.parse(r.not_before),
    notAfter: Date.parse(r.not_after),
    renewalWindow: r.ari_window_start && r.ari_window_end ? { start: Date.parse(r.ari_window_start), end: Date.parse(r.ari_window_end) } : undefined,
    ariCheckedAt: ms(r.ari_checked_at),
  };
}
