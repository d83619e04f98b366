import { isIP } from 'node:net';
import { TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';

// The rules for what may be registered as a custom domain and what a share entry looks like.

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * The normalised form of a customer domain, or a coded error saying what is wrong with it:
 * NAME_INVALID for a malformed name, NAME_RESERVED for the relay's own zone (its names are the
 * relay's to give out, and a customer CNAME there would loop).
 */
export function normalizeCustomDomain(input: string, relayDomain: string): string {
  const d = normalizeHost(input);
  const r = normalizeHost(relayDomain);
  if (d.startsWith('*.')) throw new TunnError('NAME_INVALID', `give the domain without "*.": tunn domain add ${d.slice(2)}`);
  if (/^[a-z]+:\/\//.test(d) || d.includes('/')) throw new TunnError('NAME_INVALID', `"${input}" is a URL; give just the domain name, e.g. tunn.mycompany.com`);
  if (isIP(d)) throw new TunnError('NAME_INVALID', `"${input}" is an IP address; a custom domain is a DNS name such as tunn.mycompany.com`);
  const labels = d.split('.');
  if (d.length > 253 || labels.length < 2 || !labels.every((l) => LABEL.test(l)) || /^\d+$/.test(labels.at(-1)!)) {
    throw new TunnError('NAME_INVALID', `"${input}" is not a valid domain name (letters, digits and hyphens in dot-separated labels, e.g. tunn.mycompany.com)`);
  }
  if (d === r || d.endsWith('.' + r)) {
    throw new TunnError('NAME_RESERVED', `${d} is inside the relay's own domain ${r}; its names are already served by the relay, add a domain you own instead`);
  }
  return d;
}

/** "@company.com" or an email, normalised; INVALID_INPUT saying what a share entry looks like. */
export function normalizeShare(entry: string): string {
  const e = entry.trim().toLowerCase();
  const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;
  if (e.startsWith('@') ? DOMAIN.test(e.slice(1)) : /^[^\s@,]+@[^\s@,]+$/.test(e) && DOMAIN.test(e.split('@')[1]!)) return e;
  throw new TunnError('INVALID_INPUT', `"${entry}" is neither an email (alice@company.com) nor an email domain (@company.com)`);
}
