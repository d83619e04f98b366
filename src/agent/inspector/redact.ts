import { ASSERTION_HEADER } from '../../auth/gate.ts';
import type { Header } from './model.ts';

// Secrets in captured traffic are hidden by default (--inspect-secrets shows them): credential
// headers, tunn's own tokens, and JSON keys or form fields named like a secret. The store keeps
// the originals, so an unedited replay still sends what the visitor sent.

export const REDACTED = '[redacted]';

const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', ASSERTION_HEADER, 'x-api-key', 'x-auth-token']);
/** JSON keys and form fields whose values are hidden: password, passwd, secret, token, api_key… */
const SECRET_NAME = /pass(word|wd)?|secret|token|api[-_]?key|credential|private[-_]?key/i;
/** tunn's own tokens (agent and personal access tokens, session cookies) wherever they appear. */
const TUNN_TOKEN = /\btunn_[A-Za-z0-9_-]{16,}|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/g;

export function isSecretHeader(name: string): boolean {
  const n = name.toLowerCase().replace(/_/g, '-');
  return SECRET_HEADERS.has(n) || n.startsWith('tunn-') || SECRET_NAME.test(n);
}

export function isSecretField(name: string): boolean {
  return SECRET_NAME.test(name);
}

export function redactHeaders(headers: Header[]): Header[] {
  return headers.map(([k, v]) => [k, isSecretHeader(k) && !/^tunn-user-email$/i.test(k) ? REDACTED : redactTokens(v)]);
}

export function redactTokens(text: string): string {
  return text.replace(TUNN_TOKEN, REDACTED);
}

/** A request target with secret-named query parameters (and tunn tokens) hidden. */
export function redactPath(path: string): string {
  const q = path.indexOf('?');
  if (q < 0) return redactTokens(path);
  const query = path.slice(q + 1).replace(/(^|&)([^=&]*)=([^&#]*)/g, (m, sep: string, name: string) => {
    let decoded = name;
    try {
      decoded = decodeURIComponent(name);
    } catch {
      /* shown as is */
    }
    return isSecretField(decoded) ? `${sep}${name}=${REDACTED}` : m;
  });
  return redactTokens(path.slice(0, q + 1) + query);
}

/** A parsed JSON value with every secret-named key's value replaced. */
export function redactJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactJson);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = isSecretField(k) && v !== null ? REDACTED : redactJson(v);
    return out;
  }
  return typeof value === 'string' ? redactTokens(value) : value;
}

export function redactFields(fields: [string, string][]): [string, string][] {
  return fields.map(([k, v]) => [k, isSecretField(k) ? REDACTED : redactTokens(v)]);
}

/** Restores values a user left as REDACTED in an edited replay from the originals. */
export function unredactHeaders(edited: Header[], original: Header[]): Header[] {
  return edited.map(([k, v]) => {
    if (v !== REDACTED) return [k, v];
    const o = original.find(([ok]) => ok.toLowerCase() === k.toLowerCase());
    return [k, o ? o[1] : ''];
  });
}
