import { z } from 'zod';
import { normalizeHost } from '../lib/host.ts';
import { STREAM_KINDS, type StreamKind } from './messages.ts';

// The inter-relay link protocol (issue 14), in one file like the agent's (messages.ts).
//
// Transport: mutual TLS (src/cluster/credentials.ts) with ALPN `tunn-link/1`, HTTP/2 on top;
// the dialling relay is the HTTP/2 client. Each visitor connection a relay cannot serve
// itself is carried to the holding relay as ONE stream: an HTTP/2 CONNECT request whose
// :authority is the tunnel host, with the kind and the visitor's address in headers. The
// receiver answers 200 and the stream's bytes are then the visitor's bytes, both ways, with
// half-close (END_STREAM) in each direction; any other status refuses, with a code and a
// sentence in headers (LINK_HEADERS.error / .message). Versioned by ALPN and a header: a
// relay refuses a version it does not speak, saying which it speaks.
//
// Trust: only a relay of the same cluster gets past the link's TLS, so the receiver takes the
// visitor address in LINK_HEADERS.client as the visitor's (IP allow-lists, logs, PROXY v2).
// Everything else in the stream is the visitor's own bytes, treated as on any public socket.
//
// `tunn connect` (tcp/udp/tls tunnels held elsewhere): the relay the user reached verifies the
// token (the database is shared, revocation included) and carries each stream with the user
// (LINK_HEADERS.connect: `open` or `check`, and the user's email, account and credential id).
// The receiver trusts that user as a peer of the cluster's, decides the tunnel's allow-list
// itself (the tunnel's policy lives where its agent is) and refuses with FORBIDDEN and a
// sentence for the user; a `check` is answered 200 with no bytes. A tcp/udp stream without a
// user would be a public port's connection.

export const ALPN_CLUSTER_LINK = 'tunn-link/1';
export const LINK_VERSION = 1;

export const LINK_HEADERS = {
  version: 'tunn-link-version',
  kind: 'tunn-kind',
  client: 'tunn-client',
  /** On a refusal: one of LINK_ERRORS. */
  error: 'tunn-link-error',
  /** On a refusal: what was wrong, for the dialling relay's log. */
  message: 'tunn-link-message',
  /** A `tunn connect` stream: `open` or `check`. */
  connect: 'tunn-connect',
  /** The `tunn connect` user the dialling relay authenticated. */
  userEmail: 'tunn-user-email',
  userAccount: 'tunn-user-account',
  userCredential: 'tunn-user-credential',
  /** The key that signed the user's token (optional: a relay of an older build sends none), so retiring it cuts the carried stream. */
  userKid: 'tunn-user-kid',
} as const;

/** What a carried stream holds: the agent link's stream kinds (one list, in messages.ts). */
export const LINK_STREAM_KINDS = STREAM_KINDS;
export type LinkStreamKind = StreamKind;

/** Refusal codes, with the HTTP status each is sent with. Append only. */
export const LINK_ERRORS = {
  /** The receiving relay does not serve that host (any more): try another holder. */
  NOT_HERE: 404,
  /** The request is malformed (missing or bad host, kind or client). */
  BAD_REQUEST: 400,
  /** Another link version. */
  VERSION: 505,
  /** The receiving relay could not take the stream now (closing, no live agent session). */
  UNAVAILABLE: 503,
  /** A `tunn connect` user the tunnel's allow-list refuses (the message is for the user). */
  FORBIDDEN: 403,
} as const;
export type LinkErrorCode = keyof typeof LINK_ERRORS;

export function isLinkErrorCode(v: unknown): v is LinkErrorCode {
  return typeof v === 'string' && Object.hasOwn(LINK_ERRORS, v);
}

const dnsName = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*$/;

export const forwardRequestSchema = z.object({
  host: z
    .string()
    .transform(normalizeHost)
    .pipe(z.string().regex(dnsName, 'must be a tunnel host name')),
  kind: z.enum(LINK_STREAM_KINDS, { error: `must be one of ${LINK_STREAM_KINDS.join(', ')}` }),
  /** The visitor's address as the first relay saw it, e.g. 203.0.113.9:51234 or [2001:db8::1]:443. */
  client: z.string().regex(/^[0-9A-Za-z.:[\]%_-]{1,80}$/, 'must be an address such as 203.0.113.9:51234'),
  /** A `tunn connect` stream and its user (absent: a visitor's connection). */
  connect: z
    .object({
      method: z.enum(['open', 'check'], { error: 'must be open or check' }),
      email: z.string().min(3).max(320),
      accountId: z.string().max(200).optional(),
      credentialId: z.string().max(200).optional(),
      kid: z.string().max(200).optional(),
    })
    .optional(),
});
export type ForwardRequest = z.infer<typeof forwardRequestSchema>;

/** The request headers (HTTP/2 pseudo-headers included) that carry `r`. */
export function forwardRequestHeaders(r: ForwardRequest): Record<string, string> {
  const h: Record<string, string> = { ':method': 'CONNECT', ':authority': r.host, [LINK_HEADERS.version]: String(LINK_VERSION), [LINK_HEADERS.kind]: r.kind, [LINK_HEADERS.client]: r.client };
  if (r.connect) {
    h[LINK_HEADERS.connect] = r.connect.method;
    h[LINK_HEADERS.userEmail] = r.connect.email;
    if (r.connect.accountId) h[LINK_HEADERS.userAccount] = r.connect.accountId;
    if (r.connect.credentialId) h[LINK_HEADERS.userCredential] = r.connect.credentialId;
    if (r.connect.kid) h[LINK_HEADERS.userKid] = r.connect.kid;
  }
  return h;
}

const optional = <K extends string>(k: K, v: string | undefined): Partial<Record<K, string>> => (v === undefined ? {} : ({ [k]: v } as Record<K, string>));

/** Reads a forward request from received headers, or says why it is refused. */
export function parseForwardRequest(headers: Record<string, string | string[] | undefined>): { ok: true; request: ForwardRequest } | { ok: false; code: LinkErrorCode; message: string } {
  const one = (k: string): string | undefined => {
    const v = headers[k];
    return Array.isArray(v) ? undefined : v;
  };
  if (one(':method') !== 'CONNECT') return { ok: false, code: 'BAD_REQUEST', message: `the link carries CONNECT requests only, not ${one(':method') ?? 'nothing'}` };
  const version = one(LINK_HEADERS.version);
  if (version !== String(LINK_VERSION)) return { ok: false, code: 'VERSION', message: `this relay speaks link version ${LINK_VERSION}, the request says ${version ?? 'none'}: run the same tunn version on every relay` };
  const method = one(LINK_HEADERS.connect);
  const connect = method === undefined ? undefined : { method, email: one(LINK_HEADERS.userEmail), ...optional('accountId', one(LINK_HEADERS.userAccount)), ...optional('credentialId', one(LINK_HEADERS.userCredential)), ...optional('kid', one(LINK_HEADERS.userKid)) };
  const r = forwardRequestSchema.safeParse({ host: one(':authority'), kind: one(LINK_HEADERS.kind), client: one(LINK_HEADERS.client), ...(connect && { connect }) });
  if (!r.success) {
    const i = r.error.issues[0]!;
    return { ok: false, code: 'BAD_REQUEST', message: `${i.path.map(String).join('.') || 'request'}: ${i.message}` };
  }
  return { ok: true, request: r.data };
}
