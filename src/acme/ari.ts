import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import * as acme from 'acme-client';

// ACME Renewal Information (RFC 9773): the CA suggests when to renew each certificate. The
// certificate's id is base64url(AKI keyIdentifier) "." base64url(serial as DER INTEGER bytes).

export interface RenewalWindow {
  start: number;
  end: number;
  /** When to ask again (Retry-After), ms since epoch. */
  checkAgainAt?: number;
}

/** The RFC 9773 section 4.1 certificate identifier, from hex AKI keyIdentifier and hex serial. */
export function ariCertIdFromParts(akiHex: string, serialHex: string): string {
  let serial = Buffer.from(serialHex.replace(/[^0-9a-f]/gi, '').padStart(2, '0'), 'hex');
  // DER INTEGER content: minimal, with a 0x00 prefix when the high bit is set.
  while (serial.length > 1 && serial[0] === 0 && (serial[1]! & 0x80) === 0) serial = serial.subarray(1);
  if ((serial[0]! & 0x80) !== 0) serial = Buffer.concat([Buffer.from([0]), serial]);
  return `${Buffer.from(akiHex.replace(/[^0-9a-f]/gi, ''), 'hex').toString('base64url')}.${serial.toString('base64url')}`;
}

/** The certificate identifier of the leaf of `chainPem`, or undefined when it has no AKI. */
export function ariCertId(chainPem: string): string | undefined {
  const leaf = new x509.X509Certificate(acme.crypto.splitPemChain(chainPem)[0]!);
  const aki = leaf.getExtension(x509.AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) return undefined;
  return ariCertIdFromParts(aki.keyId, leaf.serialNumber);
}

/** How long an ARI ask (the directory, then the renewal information) may take in all, acme-client's retries included. */
export const ARI_TIMEOUT_MS = 10_000;

/** `p`, or a rejection after `ms` (a CA that hangs, or answers 503/429 with a long Retry-After acme-client would wait out). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** The directory's `renewalInfo` URL: undefined when the CA offers no ARI (then an order must not carry `replaces`). */
export async function renewalInfoUrl(directoryUrl: string, timeoutMs = ARI_TIMEOUT_MS): Promise<string | undefined> {
  const dir = (await within(acme.axios.get(directoryUrl, { timeout: timeoutMs }), timeoutMs, `the ACME directory ${directoryUrl}`)).data as { renewalInfo?: unknown };
  return typeof dir.renewalInfo === 'string' && dir.renewalInfo ? dir.renewalInfo : undefined;
}

/**
 * The CA's suggested renewal window for the leaf of `chainPem`, or undefined when the CA's
 * directory has no `renewalInfo` (Pebble 2.4 has none) or the certificate has no AKI.
 */
export async function fetchRenewalWindow(directoryUrl: string, chainPem: string, now = Date.now(), timeoutMs = ARI_TIMEOUT_MS): Promise<RenewalWindow | undefined> {
  const base = await renewalInfoUrl(directoryUrl, timeoutMs);
  if (!base) return undefined;
  const id = ariCertId(chainPem);
  if (!id) return undefined;
  const res = await within(acme.axios.get(`${base.replace(/\/$/, '')}/${id}`, { timeout: timeoutMs }), timeoutMs, `the CA's renewal information`);
  const w = (res.data as { suggestedWindow?: { start?: string; end?: string } }).suggestedWindow;
  const start = Date.parse(w?.start ?? '');
  const end = Date.parse(w?.end ?? '');
  if (!Number.isFinite(start) || !Number.isFinite(end) || end < start) return undefined;
  const retry = Number(res.headers['retry-after']);
  return { start, end, checkAgainAt: Number.isFinite(retry) && retry > 0 ? now + retry * 1000 : undefined };
}
