import { createHash, timingSafeEqual } from 'node:crypto';

// Comparing a presented secret with the configured one by `===` returns at the first differing
// byte, so response times leak how much of a guess is right. Both sides are hashed first
// (SHA-256: fixed length, so timingSafeEqual never sees unequal lengths and the length of the
// secret does not leak either), then compared in constant time.

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Whether `given` equals `expected`, in time independent of where they differ. */
export function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  return timingSafeEqual(digest(given), digest(expected));
}

/** Whether an `Authorization` header value is `Bearer <token>` (scheme in any case, RFC 9110 §11.1). */
export function bearerIs(header: string | undefined, token: string | undefined): boolean {
  if (!header || token === undefined) return false;
  const m = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return sameSecret(m?.[1], token);
}
