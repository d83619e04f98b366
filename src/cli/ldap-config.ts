import { readFileSync } from 'node:fs';
import { LdapDirectory } from '../auth/ldap.ts';
import type { RelayOptions } from '../config/config.ts';
import { TunnError, errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';

// --ldap-* flags → the LDAP group source, checked before the relay listens: wrong bind
// credentials stop the start like a bad flag; an unreachable directory is logged and the
// relay serves on (lookups fail closed until it answers).

function readFileSetting(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new TunnError('CONFIG_INVALID', `cannot read ${flag} ${path}: ${errorMessage(err)}`);
  }
}

export function ldapDirectoryFrom(o: RelayOptions): LdapDirectory | undefined {
  if (!o.ldapUrl) return undefined;
  // The password comes from --ldap-bind-password-file, TUNN_LDAP_BIND_PASSWORD(_FILE) or the
  // config file, resolved by the one secrets policy (src/config/secrets.ts).
  const bindPassword = o.ldapBindPassword;
  return new LdapDirectory({
    url: o.ldapUrl,
    bindDn: o.ldapBindDn,
    bindPassword,
    userBase: o.ldapUserBase!,
    groupBase: o.ldapGroupBase,
    emailAttribute: o.ldapEmailAttribute,
    ca: o.ldapCa ? readFileSetting(o.ldapCa, '--ldap-ca') : undefined,
    startTls: o.ldapStarttls,
  });
}

/** Throws CONFIG_INVALID for refused credentials; logs any other failure and returns. */
export async function checkLdapAtStart(dir: LdapDirectory, logger: Logger): Promise<void> {
  const err = await dir.check();
  if (err) logger.error({ err: errorMessage(err) }, `${dir.label} is unreachable at start: the relay serves on, and access that needs IdP groups from it is refused until it answers`);
}
