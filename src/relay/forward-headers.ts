// Moved to src/auth/forward-headers.ts: the agent applies the same rules when TLS ends there.
export * from '../auth/forward-headers.ts';

import type { GateDecision } from '../auth/gate.ts';
import { forwardRequestHeaders } from '../auth/forward-headers.ts';
import { headerValue, type MessageHead } from '../lib/http1.ts';
import type { Tunnel } from './tunnel-directory.ts';

/** A request head as the origin gets it: the request line as parsed, then `headers` as rewritten. */
export function serializeHead(head: MessageHead, headers: [string, string][]): Buffer {
  let s = `${head.method} ${head.target} HTTP/1.${head.versionMinor}\r\n`;
  for (const [k, v] of headers) s += `${k}: ${v}\r\n`;
  s += '\r\n';
  return Buffer.from(s, 'latin1');
}

/**
 * A request head as the tunnel's origin gets it (http-proxy.ts): the relay's forwarding headers
 * set and their inbound copies removed, what the access check changes (`allowed`), and the
 * `upgrade` protocols passed on (undefined: none is).
 */
export function forwardedHead(
  head: MessageHead,
  tunnel: Tunnel,
  c: { clientIp: string; secure: boolean; isTunnCredential?: (authorization: string) => boolean },
  upgrade: string | undefined,
  allowed: Extract<GateDecision, { kind: 'allow' }> | undefined,
): Buffer {
  const headers = forwardRequestHeaders(head, {
    clientIp: c.clientIp,
    proto: c.secure ? 'https' : 'http',
    host: headerValue(head, 'host') ?? tunnel.host,
    hostOverride: tunnel.options.hostHeader,
    upgrade,
    isTunnCredential: c.isTunnCredential,
    remove: allowed?.removeHeaders,
    set: allowed?.setHeaders,
  });
  return serializeHead(head, headers);
}
