// One error class with a code union (jose's habit): misuse by the caller is a TypeError,
// bad data or a refused operation is a TunnError with a code a script can match on.

export type TunnErrorCode =
  | 'CONFIG_INVALID'
  | 'AUTH_REQUIRED'
  | 'AUTH_INVALID_TOKEN'
  | 'AUTH_TOKEN_REVOKED'
  | 'NAME_TAKEN'
  | 'NAME_INVALID'
  | 'NAME_RESERVED'
  | 'PROTOCOL_ERROR'
  | 'PROTOCOL_VERSION'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'FORBIDDEN'
  | 'INVALID_INPUT'
  | 'DNS_MISMATCH'
  | 'CERT_ISSUE_FAILED'
  | 'UNAVAILABLE'
  /** The agent cannot use the relay it was given (unknown host, untrusted certificate, not a relay): retrying will not help. */
  | 'RELAY_NOT_FOUND'
  | 'RELAY_CERT_UNTRUSTED'
  | 'RELAY_NOT_A_RELAY'
  | 'UNKNOWN_GROUP'
  | 'RATE_LIMITED'
  | 'LOGIN_FAILED';

export class TunnError extends Error {
  readonly code: TunnErrorCode;
  constructor(code: TunnErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TunnError';
    this.code = code;
  }
}

export function isTunnError(err: unknown, code?: TunnErrorCode): err is TunnError {
  return err instanceof TunnError && (code === undefined || err.code === code);
}

/** The message of any thrown value, for logs and user-facing errors. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
