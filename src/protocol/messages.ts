import { z } from 'zod';
import { TunnError, type TunnErrorCode } from '../lib/errors.ts';

// The whole agent↔relay wire protocol in one file (frp's pkg/msg habit): every control
// message has a zod schema here, used by both ends to read what the other sent.
//
// Transport: the agent dials the relay's HTTPS port with ALPN `tunn/1`; on that TLS socket
// the relay is the HTTP/2 client and the agent the HTTP/2 server. The relay opens one
// control stream (POST /tunn/control) carrying the messages below as JSON lines, and one
// CONNECT stream per public connection (headers in DATA_HEADERS, kind in STREAM_KINDS),
// whose bytes are the public connection's bytes (for `http`: HTTP/1.1 heads rewritten by
// the relay, everything else as is).

export const ALPN_TUNNEL = 'tunn/1';
/** ALPN of `tunn connect`, the identity-checked client for tcp/udp tunnels (routed by the edge). */
export const ALPN_CONNECT = 'tunn-connect/1';
/** ALPN of an ACME TLS-ALPN-01 validation (RFC 8737). */
export const ALPN_ACME_TLS = 'acme-tls/1';
export const PROTOCOL_VERSION = 1;
export const CONTROL_PATH = '/tunn/control';

/** Headers on a data stream opened by the relay. */
export const DATA_HEADERS = {
  tunnel: 'tunn-tunnel',
  client: 'tunn-client',
  kind: 'tunn-kind',
  /** The public client's port (PROXY v2 needs it; tcp/udp/tls streams). */
  clientPort: 'tunn-client-port',
  /** `tunn connect` streams only: the verified email of the user who connects. */
  email: 'tunn-email',
  /** `tunn connect` streams to a --proxy-protocol tunnel: a relay-signed assertion (JWT, audience the tunnel's host). */
  assertion: 'tunn-assertion',
  /**
   * tcp/udp streams: how long (whole milliseconds) the connection or flow may stay silent both ways
   * before it ends: the relay's --tcp-idle / --udp-flow-idle, so the agent ends it when the relay
   * does (an agent without it, or with a value out of range, uses its own default).
   */
  idleMs: 'tunn-idle-ms',
} as const;

/** The longest idle a data stream may ask for: the largest delay a Node timer keeps (about 24.8 days). */
export const MAX_STREAM_IDLE_MS = 2_147_483_647;

/** Response header the agent sets on a data stream it could not connect to the target. */
export const TARGET_ERROR_HEADER = 'tunn-target-error';

/**
 * What a tunnel serves. `http`: the relay parses every request (policy per request); `tcp`,
 * `udp`: bytes or datagrams for a public port; `tls`: TLS passthrough by SNI. Append only.
 */
export const TUNNEL_KINDS = ['http', 'tcp', 'udp', 'tls'] as const;
export type TunnelKind = (typeof TUNNEL_KINDS)[number];

/** Where a tunnel's public TLS ends: at the relay (default) or at the agent (end-to-end). */
export const TLS_ENDS = ['relay', 'agent'] as const;
export type TlsEnd = (typeof TLS_ENDS)[number];

/**
 * What the bytes of one data stream are (DATA_HEADERS.kind). `http`: HTTP/1.1 with heads
 * rewritten by the relay; `tcp`: a TCP connection's bytes; `udp`: one flow's datagrams as
 * capsules; `tls`: a client's TLS bytes, ClientHello first, for a TLS that ends at the agent;
 * `acme-tls-alpn`: a TLS-ALPN-01 validation connection for a name the agent gets certificates
 * for. Append only.
 */
export const STREAM_KINDS = ['http', 'tcp', 'udp', 'tls', 'acme-tls-alpn'] as const;
export type StreamKind = (typeof STREAM_KINDS)[number];

export function isStreamKind(v: unknown): v is StreamKind {
  return typeof v === 'string' && (STREAM_KINDS as readonly string[]).includes(v);
}

/**
 * Error codes on the wire: tunn's own (src/lib/errors.ts) and those only the link uses.
 * `INTERNAL`: the peer failed in a way it logged; `REPLACED`: another agent took the tunnel;
 * `STOPPED`: its owner stopped it (`tunn stop`); `STREAM_KIND`: a data stream of a kind the
 * agent does not serve. Append only; a code a peer does not know reads as INTERNAL.
 */
export const WIRE_ERROR_CODES = [
  'CONFIG_INVALID', 'AUTH_REQUIRED', 'AUTH_INVALID_TOKEN', 'AUTH_TOKEN_REVOKED', 'NAME_TAKEN', 'NAME_INVALID', 'NAME_RESERVED',
  'PROTOCOL_ERROR', 'PROTOCOL_VERSION', 'NOT_FOUND', 'CONFLICT', 'FORBIDDEN', 'INVALID_INPUT', 'DNS_MISMATCH', 'CERT_ISSUE_FAILED',
  'UNAVAILABLE', 'RELAY_NOT_FOUND', 'RELAY_CERT_UNTRUSTED', 'RELAY_NOT_A_RELAY', 'UNKNOWN_GROUP', 'RATE_LIMITED', 'LOGIN_FAILED',
  'INTERNAL', 'REPLACED', 'STOPPED', 'STREAM_KIND',
] as const;
export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];
// Every TunnError code can be sent as it is (a compile error here: add the new code above).
const everyTunnCodeIsWire: readonly WireErrorCode[] = [] as TunnErrorCode[];
void everyTunnCodeIsWire;

/** The wire code of any error: a TunnError's own code, else INTERNAL. */
export function wireCodeOf(err: unknown): WireErrorCode {
  return err instanceof TunnError ? err.code : 'INTERNAL';
}

/** The message types. The order is pinned by a test: append, never reorder or rename. */
export const MESSAGE_TYPES = ['hello', 'welcome', 'register', 'registered', 'unregister', 'error', 'replaced', 'notice', 'refused', 'tls-request', 'tls-reply', 'tls-state', 'agent-event'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

/** A tunnel as an agent asks the relay to serve it (the register message). */
export const tunnelOptionsSchema = z.object({
  /** Client-chosen id of this tunnel within the agent (stable across reconnects). */
  id: z.string(),
  /** What it serves; absent: http (agents before kinds). */
  kind: z.enum(TUNNEL_KINDS).optional(),
  /** Where its public TLS ends; absent: relay. */
  tlsEnds: z.enum(TLS_ENDS).optional(),
  /** Requested name (subdomain); absent: the relay picks a readable random one. */
  name: z.string().optional(),
  /** Custom domain to serve under; absent: the account's only custom domain or the relay's. */
  domain: z.string().optional(),
  /** Allow-list entries: email, @domain, group:name. */
  allow: z.array(z.string()),
  /** Open to everyone (explicit --public). */
  public: z.boolean(),
  /** Rewrite the Host header to this value before forwarding (agent's --host-header). */
  hostHeader: z.string().optional(),
  basicAuth: z.object({ user: z.string(), pass: z.string() }).optional(),
  allowIps: z.array(z.string()).optional(),
  rateLimit: z.object({ perIp: z.number().optional(), perTunnel: z.number().optional() }).optional(),
  /** Upgrade protocols forwarded besides WebSocket (agent's --allow-upgrade; never h2c). */
  allowUpgrade: z.array(z.string()).optional(),
  /** `--for`: the -a entries end `seconds` after the first registration of this run (`ref`: random per agent run). */
  grantFor: z.object({ seconds: z.number(), ref: z.string() }).optional(),
  /** With tlsEnds agent: false (`--no-fallback`) makes visitors fail the handshake until the agent's certificate is ready. */
  tlsFallback: z.boolean().optional(),
  /** tcp, tls: send the target a PROXY protocol v2 header first (client address; email for `tunn connect`). */
  proxyProtocol: z.boolean().optional(),
  /** tls: raw (the target terminates TLS; default) or tcp (TLS ends before the target). */
  backend: z.enum(['raw', 'tcp']).optional(),
});
export type TunnelOptions = z.infer<typeof tunnelOptionsSchema>;

/**
 * The rules between fields of TunnelOptions, in one place for the agent CLI (before it
 * connects) and the relay (on register). Throws INVALID_INPUT saying what to change.
 */
export function checkTunnelOptions(o: Pick<TunnelOptions, 'allow' | 'public' | 'grantFor'>): void {
  if (o.public && o.allow.length) throw new TunnError('INVALID_INPUT', '--public and -a do not go together: a public tunnel is open to everyone');
  if (o.grantFor && o.allow.length === 0) throw new TunnError('INVALID_INPUT', '--for limits the -a entries of the command, and there are none: add -a <who> (the owner always keeps access), or use `tunn grant add` on a live tunnel');
}

/** The rules of the kinds beyond HTTP (issue 11), for the agent CLI and the relay alike. */
export function checkKindOptions(o: Pick<TunnelOptions, 'kind' | 'proxyProtocol' | 'backend' | 'basicAuth' | 'rateLimit' | 'hostHeader' | 'tlsEnds'>): void {
  const kind = o.kind ?? 'http';
  if (o.proxyProtocol && kind !== 'tcp' && kind !== 'tls') throw new TunnError('INVALID_INPUT', '--proxy-protocol is for tcp and tls tunnels: a PROXY header goes before a connection\'s bytes');
  if (o.backend && kind !== 'tls') throw new TunnError('INVALID_INPUT', '--backend is for tls tunnels (raw: TLS ends at your target; tcp: TLS ends at the relay)');
  if (kind !== 'http' && (o.basicAuth || o.rateLimit || o.hostHeader)) throw new TunnError('INVALID_INPUT', `a ${kind} tunnel carries bytes, not HTTP requests: --basic-auth, --rate-limit and --host-header are for HTTP tunnels`);
  if (kind === 'tls' && o.tlsEnds === 'agent' && o.backend !== 'tcp') throw new TunnError('INVALID_INPUT', 'a tls tunnel with --backend raw ends TLS at your target: TLS at the agent goes with --backend tcp');
}

/** Why the relay answered a visitor's request itself instead of forwarding it. */
export const REFUSAL_REASONS = ['ip', 'rate-limit', 'basic-auth', 'sign-in', 'token', 'policy', 'upgrade', 'target', 'unavailable'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** One request the relay answered itself for a tunnel (its request log line on the agent). */
export const refusalSchema = z.object({
  /** When the relay answered (ms since the epoch). */
  at: z.number(),
  /** Cut to MAX_REFUSAL_METHOD characters. */
  method: z.string(),
  /** Request target (path and query), cut to MAX_REFUSAL_PATH characters. */
  path: z.string(),
  status: z.number(),
  reason: z.enum(REFUSAL_REASONS),
  /** The signed-in visitor's email (policy refusals), cut to MAX_REFUSAL_WHO characters. */
  who: z.string().optional(),
  /** The visitor's IP address. */
  ip: z.string(),
  /** A short cause: the target's error code, the rate limit hit, … (cut to MAX_REFUSAL_DETAIL characters). */
  detail: z.string().optional(),
});
export type Refusal = z.infer<typeof refusalSchema>;

/** Refusals sent one by one per tunnel per second; more are only counted (a flood must not flood the agent link). */
export const MAX_REFUSALS_PER_REPORT = 20;
/**
 * Longest fields of a Refusal (the relay cuts them; the visitor chooses the method, the path
 * and, through a sign-in, the email). Every unauthenticated request to a private tunnel is a
 * refusal, so an uncut 60,000-character method would be a megabyte a second on the agent link.
 */
export const MAX_REFUSAL_PATH = 200;
export const MAX_REFUSAL_METHOD = 16;
/** An email address is at most 254 characters (RFC 5321 §4.5.3.1.3). */
export const MAX_REFUSAL_WHO = 254;
export const MAX_REFUSAL_DETAIL = 160;

/** The relay's ACME settings, advertised in `welcome` (an agent's --acme-* default to them). */
export const acmeAdvertSchema = z.object({ directory: z.string(), email: z.string().optional(), caPem: z.string().optional() });
export type AcmeAdvert = z.infer<typeof acmeAdvertSchema>;

/**
 * What an agent that terminates TLS asks the relay (issue 12), agent → relay in `tls-request`,
 * each answered by one `tls-reply` with the same `rid`. The relay answers only for hosts that
 * agent's live tunnels with TLS at the agent hold (src/relay/agent-tls-relay.ts); it never sees
 * a request line, header or body: a decision carries the host, the tunn credential, the
 * client's address and whether refusals should be pages.
 */
export const agentTlsRequestSchema = z.discriminatedUnion('op', [
  z.object({
    op: z.literal('decide'),
    host: z.string(),
    credential: z.discriminatedUnion('kind', [z.object({ kind: z.literal('session'), cookie: z.string() }), z.object({ kind: z.literal('bearer'), token: z.string() })]),
    clientIp: z.string(),
    html: z.boolean(),
    requestId: z.string().optional(),
  }),
  z.object({ op: z.literal('redeem'), host: z.string(), code: z.string().optional(), clientIp: z.string(), userAgent: z.string().optional() }),
  z.object({ op: z.literal('session'), host: z.string(), cookie: z.string().optional() }),
  z.object({ op: z.literal('logout'), host: z.string(), cookie: z.string() }),
  /** Publish `_acme-challenge.<name>` TXT `value` in the relay's zone (names the agent holds only). */
  z.object({ op: z.literal('dns01-present'), recordName: z.string(), value: z.string() }),
  z.object({ op: z.literal('dns01-cleanup'), recordName: z.string(), value: z.string() }),
]);
export type AgentTlsRequest = z.infer<typeof agentTlsRequestSchema>;
export type AgentTlsOp = AgentTlsRequest['op'];

const principalSchema = z.union([
  z.object({ via: z.literal('session'), sessionId: z.string(), rootSessionId: z.string().optional(), accountId: z.string(), email: z.string() }),
  z.object({ via: z.literal('token'), jti: z.string(), accountId: z.string(), email: z.string() }),
]);

/** The answer to each op (`tls-reply.result`), read by the agent with the schema of the op it asked. */
export const agentTlsResultSchemas = {
  decide: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('allow'), email: z.string(), assertion: z.string(), principal: principalSchema.optional() }),
    z.object({ kind: z.literal('sign-in') }),
    z.object({
      kind: z.literal('refuse'),
      status: z.number(),
      headers: z.array(z.tuple([z.string(), z.string()])),
      body: z.string(),
      refusal: z.object({ reason: z.enum(['ip', 'rate-limit', 'basic-auth', 'sign-in', 'token', 'policy', 'unavailable']), who: z.string().optional(), detail: z.string().optional() }).optional(),
    }),
  ]),
  redeem: z.object({ cookieValue: z.string(), expiresAt: z.number(), returnPath: z.string() }).nullable(),
  session: z.object({ id: z.string(), parentId: z.string().nullable(), accountId: z.string(), email: z.string(), host: z.string(), expiresAt: z.number() }).nullable(),
  logout: z.null(),
  'dns01-present': z.null(),
  'dns01-cleanup': z.null(),
} as const satisfies { [K in AgentTlsOp]: z.ZodType };

/** Where a name's TLS ends now, as the agent reports it (`tls-state`; `tunn cert list`, `/v1/certificates`). */
export const tlsStateSchema = z.object({
  name: z.string(),
  terminatedAt: z.enum(TLS_ENDS),
  /** Why the relay terminates (fallback), or a renewal problem the agent retries. */
  reason: z.string().optional(),
  notAfter: z.number().optional(),
  /** SPKI SHA-256 (base64) of the key the agent serves. */
  pin: z.string().optional(),
});
export type TlsStateReport = z.infer<typeof tlsStateSchema>;

/**
 * Refusals an agent's gate makes for a host whose TLS ends at it, which the relay cannot see
 * (append only): rate limit, wrong --basic-auth, a bad hand-off code, a Host other than the
 * SNI (421), a client certificate refused (--client-ca). Policy refusals and bad tokens need
 * no report: the relay decided them itself and recorded them then.
 */
export const AGENT_EVENT_KINDS = ['rate_limited', 'basic_auth_failed', 'login_failed', 'host_mismatch', 'client_cert_refused'] as const;
export type AgentEventKind = (typeof AGENT_EVENT_KINDS)[number];

/**
 * One security event the agent reports. Deliberately no free text: the relay must never learn
 * a request line, header or body of an agent-terminated host (issue 12), so an event is only
 * the host (the connection's SNI), a kind, the visitor's address and an email when known; the
 * relay writes the event's wording itself and stamps the time it received it.
 */
export const agentEventSchema = z.object({
  host: z.string().max(253),
  kind: z.enum(AGENT_EVENT_KINDS),
  ip: z.union([z.ipv4(), z.ipv6()]),
  email: z.email().max(254).optional(),
});
export type AgentEventReport = z.infer<typeof agentEventSchema>;

/** At most this many agent-event messages per session and AGENT_EVENT_WINDOW_MS: the agent sends no more, the relay records no more. */
export const AGENT_EVENTS_PER_WINDOW = 60;
export const AGENT_EVENT_WINDOW_MS = 10_000;

/** One schema per message, keyed by type (the handler tables of both ends are typed from it). */
export const MESSAGE_SCHEMAS = {
  /** agent → relay, first message on every session. */
  hello: z.object({ type: z.literal('hello'), version: z.number(), token: z.string(), agentId: z.string(), agentVersion: z.string() }),
  /** relay → agent: the token was accepted. */
  welcome: z.object({
    type: z.literal('welcome'),
    accountId: z.string(),
    email: z.string(),
    relayDomain: z.string(),
    sessionId: z.string(),
    acme: acmeAdvertSchema.optional(),
    /**
     * Agent → relay message types this relay reads beyond those every relay of this protocol
     * version reads (`agent-event`). A relay ends a session that sends a type it does not know,
     * so an agent sends such a message only to a relay that lists it.
     */
    accepts: z.array(z.string()).optional(),
  }),
  /** agent → relay: serve this tunnel on this session (repeated on every session of the agent). */
  register: z.object({ type: z.literal('register'), tunnel: tunnelOptionsSchema }),
  /** relay → agent: the tunnel is live at `url`. */
  registered: z.object({ type: z.literal('registered'), id: z.string(), name: z.string(), host: z.string(), url: z.string(), urls: z.array(z.string()), /** A public tcp/udp port assigned on the relay. */ port: z.number().optional() }),
  unregister: z.object({ type: z.literal('unregister'), id: z.string() }),
  /** Either way. `fatal`: the agent must not retry (bad token, name taken, …). `id`: the tunnel concerned. */
  error: z.object({ type: z.literal('error'), code: z.enum(WIRE_ERROR_CODES).catch('INTERNAL'), message: z.string(), fatal: z.boolean(), id: z.string().optional() }),
  /** relay → agent: another agent of the same account took this tunnel's name. */
  replaced: z.object({ type: z.literal('replaced'), id: z.string(), message: z.string() }),
  /** relay → agent: something worth printing (certificate ready, policy changed, …). */
  notice: z.object({ type: z.literal('notice'), message: z.string() }),
  /**
   * relay → agent, at most once a second per tunnel: requests the relay answered itself
   * (refused at the edge, target down). `more`: refusals beyond `refusals` in that second, counted by status and reason.
   */
  refused: z.object({
    type: z.literal('refused'),
    id: z.string(),
    refusals: z.array(refusalSchema),
    more: z.array(z.object({ status: z.number(), reason: z.enum(REFUSAL_REASONS), count: z.number() })),
  }),
  /** agent → relay: one question about a host whose TLS ends at the agent (answered by tls-reply, same rid). */
  'tls-request': z.object({ type: z.literal('tls-request'), rid: z.number(), request: agentTlsRequestSchema }),
  /** relay → agent: the answer to tls-request `rid` (`result` by the op's schema), or why there is none. */
  'tls-reply': z.object({ type: z.literal('tls-reply'), rid: z.number(), result: z.unknown().optional(), error: z.object({ code: z.enum(WIRE_ERROR_CODES).catch('INTERNAL'), message: z.string() }).optional() }),
  /** agent → relay, each time it changes: where TLS of tunnel `id`'s name ends now (re-sent on every new session). */
  'tls-state': z.object({ type: z.literal('tls-state'), id: z.string(), state: tlsStateSchema }),
  /** agent → relay, only when welcome's `accepts` lists it: a refusal the agent's gate made for tunnel `id`'s host (TLS ends at the agent), for the relay's security events. */
  'agent-event': z.object({ type: z.literal('agent-event'), id: z.string(), event: agentEventSchema }),
} as const satisfies { [K in MessageType]: z.ZodType<{ type: K }> };

export type ControlMessage = { [K in MessageType]: z.infer<(typeof MESSAGE_SCHEMAS)[K]> }[MessageType];
export type MessageOf<K extends MessageType> = Extract<ControlMessage, { type: K }>;
/** A tunnel the relay serves, as it tells the agent (the `registered` message). */
export type RegisteredTunnel = Omit<MessageOf<'registered'>, 'type'>;

/** A control line that is not a valid message; says what was wrong, and which tunnel a bad register was for. */
export class InvalidMessageError extends Error {
  readonly messageType: MessageType | undefined;
  readonly tunnelId: string | undefined;
  constructor(message: string, messageType?: MessageType, tunnelId?: string) {
    super(message.length > 120 ? message.slice(0, 119) + '…' : message);
    this.name = 'InvalidMessageError';
    this.messageType = messageType;
    this.tunnelId = tunnelId;
  }
}

/** Parses one JSON line into a message, or throws InvalidMessageError saying what was wrong. */
export function parseMessage(line: string): ControlMessage {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new InvalidMessageError('control message is not JSON');
  }
  if (typeof v !== 'object' || v === null || typeof (v as { type?: unknown }).type !== 'string') {
    throw new InvalidMessageError('control message has no type');
  }
  const type = (v as { type: string }).type;
  if (!(MESSAGE_TYPES as readonly string[]).includes(type)) throw new InvalidMessageError(`unknown control message type "${type.slice(0, 40)}"`);
  const t = type as MessageType;
  const r = MESSAGE_SCHEMAS[t].safeParse(v);
  if (r.success) return r.data as ControlMessage;
  const issue = r.error.issues[0]!;
  const field = issue.path.map(String).join('.').slice(0, 40) || 'message';
  const id = t === 'register' ? (v as { tunnel?: { id?: unknown } }).tunnel?.id : undefined;
  throw new InvalidMessageError(`control message ${t}: ${field}: ${issue.message}`, t, typeof id === 'string' && id ? id.slice(0, 64) : undefined);
}

export function encodeMessage(m: ControlMessage): string {
  return JSON.stringify(m) + '\n';
}
