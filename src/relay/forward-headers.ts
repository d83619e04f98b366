// Moved to src/auth/forward-headers.ts: the agent applies the same rules when TLS ends there.
export * from '../auth/forward-headers.ts';

import type { MessageHead } from '../lib/http1.ts';

/** A request head as the origin gets it: the request line as parsed, then `headers` as rewritten. */
export function serializeHead(head: MessageHead, headers: [string, string][]): Buffer {
  let s = `${head.method} ${head.target} HTTP/1.${head.versionMinor}\r\n`;
  for (const [k, v] of headers) s += `${k}: ${v}\r\n`;
  s += '\r\n';
  return Buffer.from(s, 'latin1');
}
