import { decodeJwt } from 'jose';
import { isTunnError, TunnError } from '../lib/errors.ts';
import { accountById } from '../store/accounts.ts';
import type { Store } from '../store/store.ts';
import { tokenKid, type TokenKind, type TokenService } from './tokens.ts';

// Which tokens a script or the CLI may present as `Authorization: Bearer`: personal access
// tokens (`tunn token create`, and what `tunn login` stores) and agent tokens
// (`tunn relay token create`). Session, refresh and assertion tokens are never bearer
// credentials.
export const BEARER_KINDS: readonly TokenKind[] = ['pat', 'agent'];

export interface BearerIdentity {
  accountId: string;
  email: string;
  jti: string;
  kind: TokenKind;
  /** The signing key that signed it (retiring that key cuts what the token holds open). */
  kid?: string;
}

/**
 * Verifies a bearer token (signature, expiry, kind, revocation) and names its account.
 * Throws AUTH_INVALID_TOKEN or AUTH_TOKEN_REVOKED.
 */
export async function verifyBearer(tokens: TokenService, store: Store, token: string): Promise<BearerIdentity> {
  const claims = await tokens.verify(token, BEARER_KINDS);
  let email = typeof claims.email === 'string' ? claims.email.toLowerCase() : '';
  if (!email) {
    const acct = await accountById(store, claims.sub);
    if (!acct) throw new TunnError('AUTH_INVALID_TOKEN', 'the token belongs to an account that no longer exists');
    email = acct.email;
  }
  const kid = tokenKid(token);
  return { accountId: claims.sub, email, jti: claims.jti, kind: claims.kind, ...(kid && { kid }) };
}

/** The token from an `Authorization: Bearer …` header value, if that is what it holds. */
export function bearerFrom(authorization: string | undefined | null): string | undefined {
  return authorization ? /^bearer\s+(\S+)\s*$/i.exec(authorization)?.[1] : undefined;
}

/**
 * Whether an Authorization value carries a token this relay issued (a JWT with its issuer),
 * whether or not it is still valid. Such a credential is tunn's, never the origin's: the
 * gateway strips it on every path, public tunnels included. Only decoded, not verified: a
 * forged one is stripped too, which is what should happen to it.
 */
export function isTunnToken(authorization: string, issuer: string): boolean {
  const token = bearerFrom(authorization);
  if (!token || token.split('.').length !== 3) return false;
  try {
    return decodeJwt(token).iss === issuer;
  } catch {
    return false;
  }
}

/**
 * The account a refused bearer token belongs to, for attributing the security event (so the
 * owner sees "your revoked token was used" in `tunn events`). Only for AUTH_TOKEN_REVOKED:
 * verify() has checked the signature before it looks at revocation, so `sub` is the relay's
 * own. Invalid tokens are not attributed to anyone.
 */
export function refusedTokenOwner(err: unknown, token: string): string | undefined {
  if (!isTunnError(err, 'AUTH_TOKEN_REVOKED')) return undefined;
  try {
    const sub = decodeJwt(token).sub;
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    return undefined;
  }
}
