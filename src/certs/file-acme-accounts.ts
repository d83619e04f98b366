import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createAcmeAccountKey, type AcmeAccountStore } from '../acme/account.ts';
import { errorMessage } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import { writePrivateFile } from '../lib/private-files.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import { safeFileName } from './file-locker.ts';
import { readJsonFile } from './json-file.ts';

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
    const path = this.#path(directoryUrl);
    try {
      writePrivateFile(path, JSON.stringify(file), { exclusive: true }); // the first writer wins
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`saving the ACME account key for ${directoryUrl} in ${this.#dir}: ${errorMessage(err)}`, { cause: err });
    }
    // Another process (or a concurrent call) may have won the create: use the stored key.
    return this.#open((await this.#read(directoryUrl))!);
  }

  async recordAccountUrl(directoryUrl: string, accountUrl: string): Promise<void> {
    const f = await this.#read(directoryUrl);
    if (!f || f.accountUrl === accountUrl) return;
    writePrivateFile(this.#path(directoryUrl), JSON.stringify({ ...f, accountUrl }));
  }

  #open(f: AccountFile): string {
    if (!f.sealed) return f.key;
    if (!this.#box) throw new Error(`the ACME account key for ${f.directoryUrl} in ${this.#dir} is sealed and this store has no key to open it`);
    return this.#box.openString(f.key, `acme-account:${f.directoryUrl}`);
  }

  #read(directoryUrl: string): Promise<AccountFile | undefined> {
    return readJsonFile<AccountFile>(this.#path(directoryUrl), 'the ACME account file', 'create a new account');
  }
}
