import { randomInt } from 'node:crypto';
import { TunnError } from '../lib/errors.ts';

// Tunnel names are one DNS label under a domain the relay serves.

/** Names nobody may take: they look like the relay's own services or invite phishing. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([
  'www', 'api', 'admin', 'administrator', 'login', 'logout', 'auth', 'oauth', 'sso', 'signin', 'signup',
  'mail', 'email', 'smtp', 'imap', 'pop', 'pop3', 'mx', 'ns', 'ns1', 'ns2', 'dns', 'relay', 'tunn',
  'dashboard', 'console', 'app', 'status', 'metrics', 'health', 'static', 'assets', 'cdn', 'root',
  'support', 'help', 'docs', 'billing', 'security', 'account', 'accounts', 'id', 'identity', 'webmail',
  'autodiscover', 'autoconfig', 'localhost', 'acme', '_acme', 'ftp', 'git', 'vpn', 'proxy',
]);

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Validates a requested name; throws NAME_INVALID or NAME_RESERVED with what to do. */
export function validateName(name: string): string {
  const n = name.trim().toLowerCase();
  if (!LABEL.test(n)) {
    throw new TunnError(
      'NAME_INVALID',
      `"${name}" is not a valid tunnel name: use 1-63 letters, digits or hyphens, starting and ending with a letter or digit`,
    );
  }
  if (n.startsWith('xn--') || /^[a-z0-9]{2}--/.test(n)) {
    throw new TunnError('NAME_INVALID', `"${name}" is not a valid tunnel name: names with "--" in positions 3-4 are reserved for IDNs`);
  }
  if (RESERVED_NAMES.has(n)) throw new TunnError('NAME_RESERVED', `the name "${n}" is reserved; choose another with -n`);
  return n;
}

const ADJECTIVES = ['amber', 'brave', 'calm', 'clever', 'eager', 'fancy', 'gentle', 'happy', 'jolly', 'keen', 'lively', 'lucky', 'merry', 'nimble', 'proud', 'quick', 'quiet', 'rapid', 'shiny', 'silent', 'sunny', 'swift', 'tidy', 'vivid', 'witty', 'bold', 'cosmic', 'dusty', 'frosty', 'golden'];
const NOUNS = ['otter', 'falcon', 'badger', 'panda', 'lynx', 'heron', 'koala', 'marten', 'orca', 'puffin', 'raven', 'salmon', 'tiger', 'walrus', 'yak', 'zebra', 'bison', 'comet', 'delta', 'ember', 'fjord', 'glacier', 'harbor', 'island', 'meadow', 'nebula', 'pebble', 'river', 'summit', 'willow'];

/** A readable random name such as "brave-otter-4f2a". */
export function randomName(): string {
  const hex = randomInt(0, 0x10000).toString(16).padStart(4, '0');
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}-${hex}`;
}
