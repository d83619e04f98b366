import { z } from 'zod';

// `tunn connect`: the identity-checked client for tcp/udp/tls tunnels (decision 12). It dials
// the relay's HTTPS port with its own ALPN id and speaks HTTP/2 on that connection:
//
//   check   GET  :path /check   tunn-host: <host>  tunn-connect-kind: tcp|udp  authorization: Bearer <token>
//           200 → connectCheckSchema (JSON); otherwise a refusal (stream-refusal.ts)
//   carry   CONNECT  :authority <host>  tunn-connect-kind: tcp|udp  authorization: Bearer <token>
//           200 → the stream's bytes are the connection's (tcp) or RFC 9297 capsules (udp, capsules.ts);
//           otherwise a refusal, and the client closes its local connection at once.
//
// One HTTP/2 stream per carried connection (or UDP peer). The relay checks the token and the
// tunnel's allow-list on every request, so the check is advice to the user before listening and
// each carried connection is decided again. The version is in the ALPN id: a change that an old
// client or relay would misread gets tunn-connect/2.

export const CONNECT_ALPN = 'tunn-connect/1';
export const CONNECT_CHECK_PATH = '/check';
export const CONNECT_HOST_HEADER = 'tunn-host';
export const CONNECT_KIND_HEADER = 'tunn-connect-kind';

export const CONNECT_KINDS = ['tcp', 'udp'] as const;
export type ConnectKind = (typeof CONNECT_KINDS)[number];

/** A tunnel host as the client names it: a DNS name, compared through normalizeHost by the relay. */
const host = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/, 'must be a host name such as db.tunn.example.com');

/** What the relay reads from a check or carry request's headers. */
export const connectRequestSchema = z.object({
  host,
  kind: z.enum(CONNECT_KINDS),
  token: z.string().min(1).max(8192),
});
export type ConnectRequest = z.infer<typeof connectRequestSchema>;

/** The relay's yes to a check: who the relay thinks the user is, and what the tunnel carries. */
export const connectCheckSchema = z.object({
  allowed: z.literal(true),
  host: z.string(),
  /** The tunnel's kind: tls tunnels are carried as tcp (the TLS runs end to end). */
  tunnelKind: z.enum(['tcp', 'udp', 'tls']),
  email: z.string(),
});
export type ConnectCheck = z.infer<typeof connectCheckSchema>;

/** Request headers of a check (`method` GET) or a carried connection (`method` CONNECT). */
export function connectHeaders(method: 'check' | 'carry', r: ConnectRequest): Record<string, string> {
  const common = { [CONNECT_KIND_HEADER]: r.kind, authorization: `Bearer ${r.token}` };
  return method === 'check'
    ? { ':method': 'GET', ':path': CONNECT_CHECK_PATH, [CONNECT_HOST_HEADER]: r.host, ...common }
    : { ':method': 'CONNECT', ':authority': r.host, ...common };
}

/**
 * Reads a check or carry request from its headers (the relay's side; also the in-test server's).
 * Returns the request, or what was wrong with it for a bad_request refusal.
 */
export function readConnectRequest(headers: Record<string, unknown>): { ok: true; request: ConnectRequest; method: 'check' | 'carry' } | { ok: false; message: string } {
  const method = headers[':method'] === 'CONNECT' ? 'carry' : headers[':method'] === 'GET' && headers[':path'] === CONNECT_CHECK_PATH ? 'check' : undefined;
  if (!method) return { ok: false, message: `tunn-connect/1 takes GET ${CONNECT_CHECK_PATH} or CONNECT` };
  const auth = String(headers.authorization ?? '');
  const r = connectRequestSchema.safeParse({
    host: method === 'carry' ? headers[':authority'] : headers[CONNECT_HOST_HEADER],
    kind: headers[CONNECT_KIND_HEADER],
    token: /^Bearer /i.test(auth) ? auth.slice(7).trim() : undefined,
  });
  if (!r.success) return { ok: false, message: r.error.issues.map((i) => `${i.path.join('.') || 'request'}: ${i.message}`).join('; ') };
  return { ok: true, request: r.data, method };
}
