// The whole agent↔relay wire protocol in one file (frp's pkg/msg habit).
//
// Transport: the agent dials the relay's HTTPS port with ALPN `tunn/1`; on that TLS socket
// the relay is the HTTP/2 client and the agent the HTTP/2 server. The relay opens one
// control stream (POST /tunn/control) carrying the messages below as JSON lines, and one
// CONNECT stream per public TCP connection (headers in DATA_HEADERS), whose bytes are the
// public connection's bytes (HTTP/1.1 heads rewritten by the relay, everything else as is).

export const ALPN_TUNNEL = 'tunn/1';
export const PROTOCOL_VERSION = 1;
export const CONTROL_PATH = '/tunn/control';

/** Headers on a data stream opened by the relay. */
export const DATA_HEADERS = {
  tunnel: 'tunn-tunnel',
  client: 'tunn-client',
  kind: 'tunn-kind',
} as const;

/** Response header the agent sets on a data stream it could not connect to the target. */
export const TARGET_ERROR_HEADER = 'tunn-target-error';

/** The message types. The order is pinned by a test: append, never reorder or rename. */
export const MESSAGE_TYPES = ['hello', 'welcome', 'register', 'registered', 'unregister', 'error', 'replaced', 'notice', 'refused'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export interface TunnelOptions {
  /** Client-chosen id of this tunnel within the agent (stable across reconnects). */
  id: string;
  /** Requested name (subdomain); absent: the relay picks a readable random one. */
  name?: string;
  /** Custom domain to serve under; absent: the account's only custom domain or the relay's. */
  domain?: string;
  /** Allow-list entries: email, @domain, group:name. */
  allow: string[];
  /** Open to everyone (explicit --public). */
  public: boolean;
  /** Rewrite the Host header to this value before forwarding (agent's --host-header). */
  hostHeader?: string;
  basicAuth?: { user: string; pass: string };
  allowIps?: string[];
  rateLimit?: { perIp?: number; perTunnel?: number };
  /** Upgrade protocols forwarded besides WebSocket (agent's --allow-upgrade; never h2c). */
  allowUpgrade?: string[];
  /** `--for`: the -a entries end `seconds` after the first registration of this run (`ref`: random per agent run). */
  grantFor?: { seconds: number; ref: string };
}

/** Why the relay answered a visitor's request itself instead of forwarding it. */
export const REFUSAL_REASONS = ['ip', 'rate-limit', 'basic-auth', 'sign-in', 'token', 'policy', 'upgrade', 'target', 'unavailable'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** One request the relay answered itself for a tunnel (its request log line on the agent). */
export interface Refusal {
  /** When the relay answered (ms since the epoch). */
  at: number;
  /** Cut to MAX_REFUSAL_METHOD characters. */
  method: string;
  /** Request target (path and query), cut to MAX_REFUSAL_PATH characters. */
  path: string;
  status: number;
  reason: RefusalReason;
  /** The signed-in visitor's email (policy refusals), cut to MAX_REFUSAL_WHO characters. */
  who?: string;
  /** The visitor's IP address. */
  ip: string;
  /** A short cause: the target's error code, the rate limit hit, … (cut to MAX_REFUSAL_DETAIL characters). */
  detail?: string;
}

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

export type ControlMessage =
  /** agent → relay, first message on every session. */
  | { type: 'hello'; version: number; token: string; agentId: string; agentVersion: string }
  /** relay → agent: the token was accepted. */
  | { type: 'welcome'; accountId: string; email: string; relayDomain: string; sessionId: string }
  /** agent → relay: serve this tunnel on this session (repeated on every session of the agent). */
  | { type: 'register'; tunnel: TunnelOptions }
  /** relay → agent: the tunnel is live at `url`. */
  | { type: 'registered'; id: string; name: string; host: string; url: string; urls: string[] }
  | { type: 'unregister'; id: string }
  /** Either way. `fatal`: the agent must not retry (bad token, name taken, …). `id`: the tunnel concerned. */
  | { type: 'error'; code: string; message: string; fatal: boolean; id?: string }
  /** relay → agent: another agent of the same account took this tunnel's name. */
  | { type: 'replaced'; id: string; message: string }
  /** relay → agent: something worth printing (certificate ready, policy changed, …). */
  | { type: 'notice'; message: string }
  /**
   * relay → agent, at most once a second per tunnel: requests the relay answered itself
   * (refused at the edge, target down). `more`: refusals beyond `refusals` in that second, counted by status and reason.
   */
  | { type: 'refused'; id: string; refusals: Refusal[]; more: { status: number; reason: RefusalReason; count: number }[] };

/** Parses one JSON line into a message, or throws with what was wrong. */
export function parseMessage(line: string): ControlMessage {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error('control message is not JSON');
  }
  if (typeof v !== 'object' || v === null || typeof (v as { type?: unknown }).type !== 'string') {
    throw new Error('control message has no type');
  }
  const type = (v as { type: string }).type;
  if (!(MESSAGE_TYPES as readonly string[]).includes(type)) throw new Error(`unknown control message type "${type.slice(0, 40)}"`);
  return v as ControlMessage;
}

export function encodeMessage(m: ControlMessage): string {
  return JSON.stringify(m) + '\n';
}
