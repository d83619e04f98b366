import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, TunnError } from '../../lib/errors.ts';
import { normalizeHost } from '../../lib/host.ts';
import { writePrivateFile } from '../../lib/private-files.ts';
import type { SecretBox } from '../../lib/secret-box.ts';

// The agent's certificates and ACME accounts, in its config dir (`<config>/tls/`): one JSON
// file per certificate name and per ACME directory, each 0600 (written whole and renamed into
// place, lib/private-files.ts) in a 0700 directory, private keys sealed with the relay's
// scheme (lib/secret-box.ts, bound to the name so a sealed key moved to another file does not
// open). Keys never leave the agent: nothing here is sent anywhere.
//
// Shapes follow the interfaces certs-domains is introducing (CertStorage save/load/list,
// AcmeAccountStore accountKey/recordAccountUrl), so phase 2 can hand this store to the shared
// ACME issuer unchanged.

/** When the agent renews a certificate, and why then (acme-agent.ts). */
export interface RenewalPlan {
  /** ms since the epoch. */
  at: number;
  /** `ari`: a time picked in the CA's suggested window (RFC 9773); `lifetime`: 2/3 of the lifetime. */
  source: 'ari' | 'lifetime';
  /** The CA's suggested window, with source `ari`. */
  window?: { start: number; end: number };
  /** When to ask the CA for renewal information again. */
  checkAgainAt: number;
}

export interface AgentCertificate {
  name: string;
  chainPem: string;
  keyPem: string;
  /** `acme:<directory>` or `files` (--tls-cert/--tls-key). */
  issuer: string;
  notBefore: number;
  notAfter: number;
  /** Absent on certificates stored before ARI (then: 2/3 of the lifetime, and ask the CA). */
  renewal?: RenewalPlan;
}

interface CertFile {
  name: string;
  chainPem: string;
  key: string;
  issuer: string;
  notBefore: number;
  notAfter: number;
  renewal?: RenewalPlan;
}

interface AccountFile {
  directoryUrl: string;
  email?: string;
  key: string;
  accountUrl?: string;
}

const NAME = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

export class AgentCertStore {
  readonly #dir: string;
  readonly #sealer: SecretBox | undefined;

  /**
   * `dir`: the agent's TLS state directory (created 0700 on the first write). Without a
   * SecretBox the store only lists (names, chains, account URLs: what `tunn cert` prints).
   */
  constructor(dir: string, box?: SecretBox) {
    this.#dir = dir;
    this.#sealer = box;
  }

  get #box(): SecretBox {
    if (!this.#sealer) throw new TypeError('AgentCertStore: keys need the SecretBox');
    return this.#sealer;
  }

  #mkdirs(): void {
    mkdirSync(join(this.#dir, 'certs'), { recursive: true, mode: 0o700 });
    mkdirSync(join(this.#dir, 'acme'), { recursive: true, mode: 0o700 });
  }

  #certPath(name: string): string {
    const n = normalizeHost(name);
    if (!NAME.test(n)) throw new TunnError('INVALID_INPUT', `"${name.slice(0, 80)}" is not a host name the agent can hold a certificate for`);
    return join(this.#dir, 'certs', `${n.replace('*', '_')}.json`);
  }

  save(cert: AgentCertificate): void {
    const name = normalizeHost(cert.name);
    this.#mkdirs();
    const file: CertFile = { name, chainPem: cert.chainPem, key: this.#box.seal(cert.keyPem, `agent-certificate:${name}`), issuer: cert.issuer, notBefore: cert.notBefore, notAfter: cert.notAfter, ...(cert.renewal ? { renewal: cert.renewal } : {}) };
    writePrivateFile(this.#certPath(name), JSON.stringify(file, null, 2) + '\n');
  }

  /** The stored certificate for `name`, or undefined; a file that does not open is an error saying which. */
  load(name: string): AgentCertificate | undefined {
    const path = this.#certPath(name);
    let raw: string;
    try {
      raw = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new TunnError('UNAVAILABLE', `reading the agent's certificate for ${name} (${path}): ${errorMessage(err)}`, { cause: err });
    }
    try {
      const f = JSON.parse(raw) as CertFile;
      return { name: f.name, chainPem: f.chainPem, keyPem: this.#box.openString(f.key, `agent-certificate:${f.name}`), issuer: f.issuer, notBefore: f.notBefore, notAfter: f.notAfter, ...(f.renewal ? { renewal: f.renewal } : {}) };
    } catch (err) {
      throw new TunnError('CONFIG_INVALID', `the agent's certificate file for ${name} (${path}) cannot be opened: ${errorMessage(err)}; delete it to get a new certificate`, { cause: err });
    }
  }

  /** Every stored certificate without its key, by name. */
  list(): Omit<AgentCertificate, 'keyPem'>[] {
    const out: Omit<AgentCertificate, 'keyPem'>[] = [];
    for (const f of listDir(join(this.#dir, 'certs')).sort()) {
      if (!f.endsWith('.json')) continue;
      const c = JSON.parse(readFileSync(join(this.#dir, 'certs', f), 'utf8')) as CertFile;
      out.push({ name: c.name, chainPem: c.chainPem, issuer: c.issuer, notBefore: c.notBefore, notAfter: c.notAfter, ...(c.renewal ? { renewal: c.renewal } : {}) });
    }
    return out;
  }

  #accountPath(directoryUrl: string): string {
    return join(this.#dir, 'acme', `${createHash('sha256').update(directoryUrl).digest('hex').slice(0, 24)}.json`);
  }

  #readAccount(directoryUrl: string): AccountFile | undefined {
    try {
      return JSON.parse(readFileSync(this.#accountPath(directoryUrl), 'utf8')) as AccountFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new TunnError('CONFIG_INVALID', `the agent's ACME account file for ${directoryUrl} cannot be read: ${errorMessage(err)}`, { cause: err });
    }
  }

  /** The account key for `directoryUrl` (PEM), made by `create` and kept on first use. */
  async accountKey(directoryUrl: string, email: string | undefined, create: () => Promise<string>): Promise<string> {
    const context = `agent-acme-account:${directoryUrl}`;
    const known = this.#readAccount(directoryUrl);
    if (known) return this.#box.openString(known.key, context);
    const key = await create();
    this.#mkdirs();
    writePrivateFile(this.#accountPath(directoryUrl), JSON.stringify({ directoryUrl, email, key: this.#box.seal(key, context) } satisfies AccountFile, null, 2) + '\n');
    return key;
  }

  recordAccountUrl(directoryUrl: string, accountUrl: string): void {
    const f = this.#readAccount(directoryUrl);
    if (!f || f.accountUrl === accountUrl) return;
    writePrivateFile(this.#accountPath(directoryUrl), JSON.stringify({ ...f, accountUrl }, null, 2) + '\n');
  }

  /** The account URL the CA gave for `directoryUrl` (for CAA accounturi), if the agent has one. */
  accountUrl(directoryUrl: string): string | undefined {
    return this.#readAccount(directoryUrl)?.accountUrl;
  }

  /** Every ACME account the agent has (directory and account URL; never the key). */
  accounts(): { directoryUrl: string; accountUrl?: string; email?: string }[] {
    return listDir(join(this.#dir, 'acme'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(this.#dir, 'acme', f), 'utf8')) as AccountFile)
      .map(({ directoryUrl, accountUrl, email }) => ({ directoryUrl, accountUrl, email }));
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
