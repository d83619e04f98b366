import { createHash, timingSafeEqual } from 'node:crypto';
import { TunnError } from '../lib/errors.ts';

// `--basic-auth user:pass`: a tunnel-wide password in front of everything else the visitor
// does. Compared in constant time over fixed-length digests, so neither the length nor a
// matching prefix leaks through timing.

export interface BasicCredentials {
  user: string;
  pass: string;
}

/** Parses `user:pass`; throws INVALID_INPUT naming what is wrong (never echoing the password). */
export function parseBasicAuth(raw: string): BasicCredentials {
  const i = raw.indexOf(':');
  const user = i < 0 ? raw : raw.slice(0, i);
  if (i <= 0 || i === raw.length - 1) {
    // Without a colon the whole value may be the password: nothing of it is echoed.
    const what = i < 0 ? 'has no ":"' : i === 0 ? 'has an empty user' : `has an empty password (user "${user}")`;
    throw new TunnError('INVALID_INPUT', `--basic-auth ${what}: expected user:password with both parts non-empty, e.g. admin:s3cret`);
  }
  return { user, pass: raw.slice(i + 1) };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Whether an `Authorization` header value carries exactly these credentials. */
export function checkBasicAuth(header: string | undefined, cred: BasicCredentials): boolean {
  if (!header) return false;
  const m = /^basic\s+([A-Za-z0-9+/=._-]+)\s*$/i.exec(header);
  if (!m) return false;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const want = digest(`${cred.user}:${cred.pass}`);
  return timingSafeEqual(digest(decoded), want);
}
