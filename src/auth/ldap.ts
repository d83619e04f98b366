import type { Client } from 'ldapts';
import { TunnError, errorMessage } from '../lib/errors.ts';
import type { GroupDirectory } from './idp-groups.ts';
import { isUnder, parseDn, rdnValue, type Dn } from './ldap-dn.ts';

// LDAP as a source of IdP groups (`-a idp:<name>`), for any login method. A lookup binds as
// the relay's service account, finds the user by email (exactly one entry, or no answer), and
// collects group names from `memberOf` on the user and from group entries under the group base
// that name the user in `member` or `uniqueMember`. A group's name is the value of the first RDN
// of its DN (cn=Engineering,ou=groups,… → Engineering). With a group base, only groups whose DN
// lies under it count, from memberOf too: a directory where users may create groups elsewhere
// (ou=self-service) must not let them name themselves into idp:engineering. Each lookup uses its
// own connection: lookups are rare (once per user per --idp-refresh), and a dead pooled
// connection cannot wedge them.

export interface LdapOptions {
  /** ldaps://host[:port] or ldap://host[:port] (then StartTLS with `startTls`). */
  url: string;
  bindDn?: string;
  bindPassword?: string;
  userBase: string;
  groupBase?: string;
  /** Attribute holding the email; default mail. */
  emailAttribute?: string;
  /** Extra CA (PEM) to trust for the directory's certificate. */
  ca?: string;
  startTls?: boolean;
  /** Per operation and for connecting; default 5000 ms. */
  timeoutMs?: number;
}

/** RFC 4515 §3: escape a value for use inside a search filter. */
export function escapeFilterValue(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    // NUL, '(', ')', '*', '\' must be escaped; non-ASCII bytes are escaped too, so the filter is plain ASCII.
    out += byte === 0x00 || byte === 0x28 || byte === 0x29 || byte === 0x2a || byte === 0x5c || byte > 0x7e || byte < 0x20 ? '\\' + byte.toString(16).padStart(2, '0') : String.fromCharCode(byte);
  }
  return out;
}

/** The value of a DN's first RDN, unescaped (RFC 4514): "cn=R\\,D,ou=g" → "R,D"; undefined when not a DN. */
export function firstRdnValue(dn: string): string | undefined {
  const parsed = parseDn(dn);
  return parsed ? rdnValue(parsed) : undefined;
}

function values(v: string | string[] | Buffer | Buffer[] | undefined): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : x));
}

export class LdapDirectory implements GroupDirectory {
  readonly label: string;
  readonly #o: LdapOptions;
  readonly #groupBase: Dn | undefined;

  constructor(opts: LdapOptions) {
    if (!/^ldaps?:\/\//i.test(opts.url)) throw new TypeError('LdapDirectory: url must be ldap:// or ldaps://');
    this.#o = opts;
    this.label = `the LDAP directory ${new URL(opts.url).host}`;
    if (opts.groupBase !== undefined) {
      const base = parseDn(opts.groupBase);
      if (!base || base.length === 0) throw new TunnError('CONFIG_INVALID', `--ldap-group-base "${opts.groupBase}" is not a distinguished name: write it as RDNs from the groups' container up, e.g. ou=groups,dc=corp,dc=example`);
      this.#groupBase = base;
    }
  }

  /**
   * Binds once, for the relay's start. Wrong credentials are a configuration error
   * (CONFIG_INVALID: the relay exits with the message); an unreachable directory resolves to
   * the error so the relay can log it and serve on (lookups then fail closed until it returns).
   */
  async check(): Promise<Error | undefined> {
    try {
      await this.#withClient(async () => {});
      return undefined;
    } catch (err) {
      if (err instanceof TunnError && err.code === 'CONFIG_INVALID') throw err;
      return err instanceof Error ? err : new Error(errorMessage(err));
    }
  }

  async groupsOf(email: string): Promise<string[]> {
    return this.#withClient(async (c) => {
      const attr = this.#o.emailAttribute ?? 'mail';
      // No client size limit: ldapts reports a server's "size limit exceeded" (result 4) as an
      // error only then; with one, a server limit of 1 would return one entry and hide the rest.
      const { searchEntries } = await c.search(this.#o.userBase, { scope: 'sub', filter: `(${attr}=${escapeFilterValue(email)})`, attributes: ['memberOf'] }).catch((err: unknown) => {
        // The server stopped at its limit: more entries matched than it would send.
        if ((err as { name?: string }).name === 'SizeLimitExceededError') return { searchEntries: [{}, {}] as { dn: string; memberOf?: string[] }[] };
        throw err;
      });
      if (searchEntries.length === 0) return [];
      // Two entries with one email: which person is this? Refuse rather than guess.
      if (searchEntries.length > 1) throw Object.assign(new Error(`more than one entry under ${this.#o.userBase} has ${attr}=${email}; fix the directory so each email names one person`), { userSpecific: true });
      const user = searchEntries[0]!;
      const names = new Set<string>();
      for (const dn of values(user.memberOf as string | string[] | undefined)) {
        const n = this.#groupName(dn);
        if (n) names.add(n);
      }
      if (this.#o.groupBase) {
        const dn = escapeFilterValue(user.dn);
        const groups = await c.search(this.#o.groupBase, { scope: 'sub', filter: `(|(member=${dn})(uniqueMember=${dn}))`, attributes: ['1.1'] });
        for (const g of groups.searchEntries) {
          const n = this.#groupName(g.dn);
          if (n) names.add(n);
        }
      }
      return [...names];
    });
  }

  /** A group's name from its DN; undefined for a DN that is not one, or (with a group base) not under it. */
  #groupName(text: string): string | undefined {
    const dn = parseDn(text);
    if (!dn) return undefined;
    if (this.#groupBase && !isUnder(dn, this.#groupBase)) return undefined;
    return rdnValue(dn);
  }

  async #withClient<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const timeout = this.#o.timeoutMs ?? 5000;
    const tlsOptions = this.#o.ca ? { ca: [this.#o.ca] } : {};
    // ldapts dials TLS whenever tlsOptions are given: for ldap:// they go to startTLS only.
    const ldaps = /^ldaps:/i.test(this.#o.url);
    // ldapts is loaded only by a relay with a directory configured (idle memory, issue 9).
    const { Client, InvalidCredentialsError } = await import('ldapts');
    const c = new Client({ url: this.#o.url, timeout, connectTimeout: timeout, ...(ldaps ? { tlsOptions } : {}) });
    try {
      if (this.#o.startTls) await c.startTLS(tlsOptions);
      if (this.#o.bindDn) {
        try {
          await c.bind(this.#o.bindDn, this.#o.bindPassword ?? '');
        } catch (err) {
          if (err instanceof InvalidCredentialsError) {
            throw new TunnError('CONFIG_INVALID', `the LDAP directory ${this.#o.url} refused --ldap-bind-dn ${this.#o.bindDn} with its password: check --ldap-bind-dn and the password in --ldap-bind-password-file`, { cause: err });
          }
          throw err;
        }
      }
      return await fn(c);
    } finally {
      await c.unbind().catch(() => {});
    }
  }
}
