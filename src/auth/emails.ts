import { TunnError } from '../lib/errors.ts';

// One definition of "an email address" and "an email domain" for groups, policy entries and
// login: lower-cased, trimmed, a plausible local part and a DNS name with at least one dot.
// Deliberately narrower than RFC 5322 (no quoted local parts, no IP literals): these are
// identities people type into `-a`, and a clear refusal beats a surprising match. Pure (no Node
// APIs): the web console checks what is typed with these very functions and messages.

const LOCAL = /^[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$/;
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export function isValidDomain(domain: string): boolean {
  if (domain.length > 253 || !domain.includes('.')) return false;
  return domain.split('.').every((l) => LABEL.test(l));
}

/** The normalised email, or undefined when `raw` is not one. */
export function parseEmail(raw: string): string | undefined {
  const e = raw.trim().toLowerCase();
  const at = e.lastIndexOf('@');
  if (at <= 0 || at !== e.indexOf('@')) return undefined;
  const local = e.slice(0, at);
  const domain = e.slice(at + 1);
  if (!LOCAL.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..')) return undefined;
  return isValidDomain(domain) ? e : undefined;
}

/** The normalised email; throws INVALID_INPUT naming the bad value. */
export function requireEmail(raw: string, what = 'email'): string {
  const e = parseEmail(raw);
  if (!e) throw new TunnError('INVALID_INPUT', `"${raw}" is not a valid ${what} address (expected name@example.com)`);
  return e;
}

/** The domain part of a normalised email. */
export function emailDomain(email: string): string {
  return email.slice(email.indexOf('@') + 1);
}

/** The normalised, de-duplicated emails; throws INVALID_INPUT naming every bad one. */
export function requireEmails(raw: readonly string[]): string[] {
  const bad: string[] = [];
  const out = new Set<string>();
  for (const r of raw) {
    try {
      out.add(requireEmail(r));
    } catch {
      bad.push(r);
    }
  }
  if (bad.length) {
    throw new TunnError('INVALID_INPUT', `not valid email address${bad.length > 1 ? 'es' : ''}: ${bad.map((b) => `"${b}"`).join(', ')} (expected name@example.com)`);
  }
  return [...out];
}
