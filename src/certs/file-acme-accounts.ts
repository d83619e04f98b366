import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createAcmeAccountKey, type AcmeAccountStore } from '../acme/account.ts';
import { errorMessage } from '../lib/errors.ts';
import { nowIso, randomId } from '../lib/ids.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import { safeFileName } from './file-locker.ts';

// ACME account keys as files, for a process without the relay's database (an agent that runs
// ACME itself): `<dir>/<directory URL>.json`, 0600 in a 0700 directory, the key sealed when a
// SecretBox is given. The first writer wins (an exclusive create); everyone uses its key.

interface AccountFile {
  directoryUrl: string;
  email: string | null;
  key: string;
  sealed: boolean;
  accountUrl: string | null;
  createdAt: string;
}

export class FileAcmeAccounts implements AcmeAccountStore {
  readonly #dir: string;
  readonly #box?: SecretBox;

  constructor(dir: string, opts: { box?: SecretBox } = {}) {
    this.#dir = dir;
    this.#box = opts.box;
  }

  #path(directoryUrl: string): string {
    return join(this.#dir, `${safeFileName(directoryUrl)}.json`);
  }

  async accountKey(directoryUrl: string, email: string | undefined): Promise<string> {
    const existing = await this.#read(directoryUrl);
    if (existing) return this.#open(existing);
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const key = await createAcmeAccountKey();
    const context = `acme-account:${directoryUrl}`;
    const file: AccountFile = { directoryUrl, email: email ?? null, key: this.#box ? this.#box.seal(key, context) : key, sealed: Boolean(this.#box), accountUrl: null, createdAt: nowIso() };
    // Written whole to a temporary file, then linked into place: link fails if the name exists,
    // so the first writer wins and nobody ever reads a half-written file.
    const path = this.#path(directoryUrl);
    const tmp = `${path}.${randomId(8)}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify(file), { mode: 0o600, flag: 'wx' });
      await link(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`saving the ACME account key for ${directoryUrl} in ${this.#dir}: ${errorMessage(err)}`, { cause: err });
    } finally {
      await rm(tmp, { force: true });
    }
    // Another process (or a concurrent call) may have won the create: use the stored key.
    return this.#open((await this.#read(directoryUrl))!);
  }

  async recordAccountUrl(directoryUrl: string, accountUrl: string): Promise<void> {
    const f = await this.#read(directoryUrl);
    if (!f || f.accountUrl === accountUrl) return;
    const path = this.#path(directoryUrl);
    const tmp = `${path}.${randomId(8)}.tmp`;
    await writeFile(tmp, JSON.stringify({ ...f, accountUrl }), { mode: 0o600, flag: 'wx' });
    await rename(tmp, path).catch(async (err: unknown) => {
      await rm(tmp, { force: true });
      throw err;
    });
  }

  #open(f: AccountFile): string {
    if (!f.sealed) return f.key;
    if (!this.#box) throw new Error(`the ACME account key for ${f.directoryUrl} in ${this.#dir} is sealed and this store has no key to open it`);
    return this.#box.openString(f.key, `acme-account:${f.directoryUrl}`);
  }

  async #read(directoryUrl: string): Promise<AccountFile | undefined> {
    const path = this.#path(directoryUrl);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new Error(`reading the ACME account file ${path}: ${errorMessage(err)}`, { cause: err });
    }
    try {
      return JSON.parse(text) as AccountFile;
    } catch (err) {
      throw new Error(`reading the ACME account file ${path}: it is not valid JSON (${errorMessage(err)}); remove it to create a new account`, { cause: err });
    }
  }
}
