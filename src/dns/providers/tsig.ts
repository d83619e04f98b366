import { createHmac, timingSafeEqual } from 'node:crypto';
import { TunnError } from '../../lib/errors.ts';
import { normalizeHost } from '../../lib/host.ts';
import { encodeName, TSIG_TYPE } from './wire.ts';

// TSIG (RFC 8945) with HMAC-SHA256, the one algorithm tunn signs with (RFC 8945 §6 lists it as
// mandatory to implement; BIND's `tsig-keygen` makes it by default). A key comes from a file in
// BIND's own format (what `tsig-keygen NAME` prints) or as one line `name:base64`, optionally
// led by the algorithm as nsupdate's `-y` takes it (`hmac-sha256:name:base64`).

const CLASS_ANY = 255;
export const HMAC_SHA256 = 'hmac-sha256';
/** Seconds of clock difference either side accepted (RFC 8945 §5.2.3 recommends 300). */
export const TSIG_FUDGE = 300;

export interface TsigKey {
  /** The key's name, lower case, no trailing dot (the owner name of the TSIG RR). */
  name: string;
  algorithm: typeof HMAC_SHA256;
  secret: Buffer;
}

/** RFC 8945 §5.3 error codes carried in the TSIG RR (the message's RCODE is then NOTAUTH). */
export const TSIG_ERRORS: Record<number, string> = { 16: 'BADSIG', 17: 'BADKEY', 18: 'BADTIME', 22: 'BADTRUNC' };

const KEY_HELP = 'a TSIG key is BIND\'s `key "name" { algorithm hmac-sha256; secret "…"; };` (as `tsig-keygen name` prints it) or one line name:base64-secret';

/** Parses a TSIG key (BIND format or `[hmac-sha256:]name:secret`). Errors never quote the secret. */
export function parseTsigKey(text: string, where: string): TsigKey {
  const t = text.trim();
  let name: string;
  let algorithm: string;
  let secretB64: string;
  const bind = /^key\s+"?([^"\s{]+)"?\s*\{([^}]*)\}\s*;?$/s.exec(t);
  if (bind) {
    name = bind[1]!;
    const body = bind[2]!;
    algorithm = /algorithm\s+"?([A-Za-z0-9.-]+)"?\s*;/.exec(body)?.[1] ?? '';
    secretB64 = /secret\s+"([^"]*)"\s*;/.exec(body)?.[1] ?? '';
    if (!algorithm) throw new TunnError('CONFIG_INVALID', `${where}: the key block has no "algorithm hmac-sha256;" line; ${KEY_HELP}`);
    if (!secretB64) throw new TunnError('CONFIG_INVALID', `${where}: the key block has no secret "…"; line; ${KEY_HELP}`);
  } else if (/^key\b/.test(t)) {
    throw new TunnError('CONFIG_INVALID', `${where}: not a complete key block (missing braces or quotes?); ${KEY_HELP}`);
  } else {
    const parts = t.split(':');
    if (parts.length === 3) [algorithm, name, secretB64] = parts as [string, string, string];
    else if (parts.length === 2) [name, secretB64, algorithm] = [parts[0]!, parts[1]!, HMAC_SHA256];
    else throw new TunnError('CONFIG_INVALID', `${where}: not a TSIG key; ${KEY_HELP}`);
  }
  algorithm = algorithm.toLowerCase().replace(/\.$/, '');
  if (algorithm !== HMAC_SHA256) throw new TunnError('CONFIG_INVALID', `${where}: algorithm ${algorithm} is not supported; make an hmac-sha256 key (\`tsig-keygen -a hmac-sha256 NAME\`)`);
  name = normalizeHost(name);
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(name)) throw new TunnError('CONFIG_INVALID', `${where}: the key name is not a DNS name; ${KEY_HELP}`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(secretB64) || secretB64.length % 4 !== 0) throw new TunnError('CONFIG_INVALID', `${where}: the secret of key ${name} is not base64; ${KEY_HELP}`);
  const secret = Buffer.from(secretB64, 'base64');
  if (secret.length < 16) throw new TunnError('CONFIG_INVALID', `${where}: the secret of key ${name} is ${secret.length} bytes; use at least 16 (\`tsig-keygen\` makes 32)`);
  return { name, algorithm: HMAC_SHA256, secret };
}

/** The TSIG variables of RFC 8945 §4.3.3 (key name and algorithm in canonical form). */
function tsigVariables(key: TsigKey, timeSigned: number, fudge: number, error: number, other: Buffer): Buffer {
  const fixed = Buffer.alloc(2 + 4);
  fixed.writeUInt16BE(CLASS_ANY, 0);
  fixed.writeUInt32BE(0, 2); // TTL
  const tail = Buffer.alloc(6 + 2 + 2 + 2);
  writeTime(tail, 0, timeSigned);
  tail.writeUInt16BE(fudge, 6);
  tail.writeUInt16BE(error, 8);
  tail.writeUInt16BE(other.length, 10);
  return Buffer.concat([encodeName(key.name), fixed, encodeName(key.algorithm), tail, other]);
}

function writeTime(buf: Buffer, offset: number, seconds: number): void {
  buf.writeUInt16BE(Math.floor(seconds / 2 ** 32), offset);
  buf.writeUInt32BE(seconds % 2 ** 32, offset + 2);
}

function hmac(key: TsigKey, ...parts: Buffer[]): Buffer {
  const h = createHmac('sha256', key.secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The MAC of a request (RFC 8945 §4.3.3): over the whole message as sent without the TSIG RR, then the TSIG variables. */
export function requestMac(key: TsigKey, message: Buffer, timeSigned: number, fudge = TSIG_FUDGE): Buffer {
  return hmac(key, message, tsigVariables(key, timeSigned, fudge, 0, Buffer.alloc(0)));
}

/** Appends a TSIG RR to `message` (whose ARCOUNT it increments). Returns the signed message and its MAC. */
export function signMessage(key: TsigKey, message: Buffer, timeSigned: number): { signed: Buffer; mac: Buffer } {
  const mac = requestMac(key, message, timeSigned);
  const id = message.readUInt16BE(0);
  const alg = encodeName(key.algorithm);
  const rdata = Buffer.alloc(alg.length + 6 + 2 + 2 + mac.length + 2 + 2 + 2);
  let o = alg.copy(rdata, 0);
  writeTime(rdata, o, timeSigned);
  o += 6;
  o = rdata.writeUInt16BE(TSIG_FUDGE, o);
  o = rdata.writeUInt16BE(mac.length, o);
  o += mac.copy(rdata, o);
  o = rdata.writeUInt16BE(id, o);
  o = rdata.writeUInt16BE(0, o); // error
  rdata.writeUInt16BE(0, o); // other len
  const head = Buffer.alloc(10);
  head.writeUInt16BE(TSIG_TYPE, 0);
  head.writeUInt16BE(CLASS_ANY, 2);
  head.writeUInt32BE(0, 4);
  head.writeUInt16BE(rdata.length, 8);
  const signed = Buffer.concat([message, encodeName(key.name), head, rdata]);
  signed.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return { signed, mac };
}

/** A TSIG RR read from the end of a message. */
export interface TsigRecord {
  keyName: string;
  algorithm: string;
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  other: Buffer;
  /** The message before the TSIG RR, ARCOUNT decremented and the original id restored (the MAC's input). */
  unsigned: Buffer;
}

/** Checks a response's TSIG (RFC 8945 §5.3.4): the MAC over the request's MAC, the response and its variables, and the time. */
export function verifyResponse(key: TsigKey, t: TsigRecord, requestMacValue: Buffer, nowSeconds: number): { ok: true } | { ok: false; why: string } {
  if (t.keyName !== key.name || t.algorithm !== key.algorithm) return { ok: false, why: `the answer is signed with key ${t.keyName} (${t.algorithm}), not ${key.name}` };
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(requestMacValue.length);
  const expected = hmac(key, prefix, requestMacValue, t.unsigned, tsigVariables(key, t.timeSigned, t.fudge, t.error, t.other));
  if (t.mac.length !== expected.length || !timingSafeEqual(t.mac, expected)) return { ok: false, why: 'the signature on the answer does not match the key' };
  if (Math.abs(nowSeconds - t.timeSigned) > t.fudge) return { ok: false, why: `the answer was signed at ${new Date(t.timeSigned * 1000).toISOString()}, more than ${t.fudge} s from this machine's clock` };
  return { ok: true };
}
