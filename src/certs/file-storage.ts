import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../lib/errors.ts';
import { nowIso, randomId } from '../lib/ids.ts';
import { writePrivateFile } from '../lib/private-files.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import { FileLocker, safeFileName } from './file-locker.ts';
import type { IssuedCertificate } from './issuer.ts';
import { readJsonFile } from './json-file.ts';
import type { CertificateSummary, CertStorage, StoredCertificate } from './storage.ts';

// Certificates as files (certmagic's filestorage.go), for a process without the relay's
// database (an agent that runs ACME itself): `<dir>/<name>.json`, one per key name, written
// whole and renamed over the old one (lib/private-files.ts; atomic on POSIX file systems).
// Files are 0600 in a 0700 directory; with a SecretBox the private key is also sealed, bound to the name.
// Changes to one name are serialised by lock files under `<dir>/.locks`, so a renewal-window
// update never writes back an older certificate over a newer one.

interface CertFile {
  id: string;
  name: string;
  names: string[];
  issuer: string;
  chainPem: string;
  /** Sealed (v1:…) when the storage has a SecretBox, else the PEM. */
  key: string;
  sealed: boolean;
  notBefore: number;
  notAfter: number;
  renewalWindow?: { start: number; end: number };
  ariCheckedAt?: number;
  createdAt: string;
}

const keyContext = (name: string) => `certificate:${name}`;

export class FileCertStorage implements CertStorage {
  readonly #dir: string;
  readonly #box?: SecretBox;
  readonly #locks: FileLocker;

  constructor(dir: string, opts: { box?: SecretBox } = {}) {
    this.#dir = dir;
    this.#box = opts.box;
    this.#locks = new FileLocker(join(dir, '.locks'), { pollMs: 20 });
  }

  #path(name: string): string {
    return join(this.#dir, `${safeFileName(name)}.json`);
  }

  async save(name: string, cert: IssuedCertificate, now = Date.now()): Promise<StoredCertificate> {
    const file: CertFile = {
      id: randomId(20),
      name,
      names: cert.names,
      issuer: cert.issuer,
      chainPem: cert.chainPem,
      key: this.#box ? this.#box.seal(cert.keyPem, keyContext(name)) : cert.keyPem,
      sealed: Boolean(this.#box),
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      createdAt: nowIso(now),
    };
    await this.#change(name, async () => this.#write(name, file));
    return { id: file.id, name, names: cert.names, issuer: cert.issuer, chainPem: cert.chainPem, keyPem: cert.keyPem, notBefore: cert.notBefore, notAfter: cert.notAfter };
  }

  async load(name: string): Promise<StoredCertificate | undefined> {
    const f = await this.#read(this.#path(name));
    if (!f) return undefined;
    let keyPem: string;
    if (!f.sealed) keyPem = f.key;
    else if (!this.#box) throw new Error(`loading the certificate ${name} from ${this.#path(name)}: its key is sealed and this storage has no key to open it`);
    else keyPem = this.#box.openString(f.key, keyContext(f.name));
    return { ...summary(f), chainPem: f.chainPem, keyPem };
  }

  async list(): Promise<CertificateSummary[]> {
    const entries = await readdir(this.#dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw new Error(`listing certificates in ${this.#dir}: ${errorMessage(err)}`, { cause: err });
    });
    const out: CertificateSummary[] = [];
    for (const e of entries) {
      if (!e.endsWith('.json')) continue;
      const f = await this.#read(join(this.#dir, e));
      if (f) out.push(summary(f));
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async setRenewalWindow(name: string, id: string, window: { start: number; end: number } | undefined, checkedAt: number): Promise<void> {
    await this.#change(name, async () => {
      const f = await this.#read(this.#path(name));
      if (!f || f.id !== id) return; // renewed or deleted meanwhile: that change wins
      await this.#write(name, { ...f, renewalWindow: window && { start: window.start, end: window.end }, ariCheckedAt: checkedAt });
    });
  }

  async delete(name: string): Promise<void> {
    await this.#change(name, () => rm(this.#path(name), { force: true }));
  }

  async #change(name: string, fn: () => Promise<void>): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const unlock = await this.#locks.lock(name);
    try {
      await fn();
    } finally {
      await unlock();
    }
  }

  async #write(name: string, f: CertFile): Promise<void> {
    const path = this.#path(name);
    try {
      writePrivateFile(path, JSON.stringify(f));
    } catch (err) {
      throw new Error(`writing the certificate ${name} to ${path}: ${errorMessage(err)}`, { cause: err });
    }
  }

  #read(path: string): Promise<CertFile | undefined> {
    return readJsonFile<CertFile>(path, 'the certificate file', 'have the certificate issued again');
  }
}

function summary(f: CertFile): CertificateSummary {
  return { id: f.id, name: f.name, names: f.names, issuer: f.issuer, notBefore: f.notBefore, notAfter: f.notAfter, renewalWindow: f.renewalWindow, ariCheckedAt: f.ariCheckedAt };
}
