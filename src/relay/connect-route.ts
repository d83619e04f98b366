import http2, { type ClientHttp2Stream, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import tls, { type SecureContext } from 'node:tls';
import { verifyBearer } from '../auth/bearer.ts';
import type { RecordEvent } from '../auth/events.ts';
import type { Principal } from '../auth/revocation.ts';
import type { TokenService } from '../auth/tokens.ts';
import { errorMessage, isTunnError } from '../lib/errors.ts';
import { splicedH2Stream } from '../protocol/h2-stream.ts';
import { normalizeHost } from '../lib/host.ts';
import type { Logger } from '../lib/logger.ts';
import type { ForwardRequest } from '../protocol/cluster-link.ts';
import { CONNECT_ALPN, type ConnectKind } from '../protocol/connect.ts';
import type { Refusal } from '../protocol/stream-refusal.ts';
import { HANDSHAKE_TIMEOUT_MS } from '../protocol/timing.ts';
import type { Store } from '../store/store.ts';
import { ConnectServer, type ConnectPrincipal, type ConnectTunnel } from './connect-server.ts';
import type { LiveConnection } from './gateway.ts';
import { isRefusal, openTunnelStream } from './open-tunnel-stream.ts';
import type { ConnectionTable } from './live-revocation.ts';
import { cleanIp } from './own-host.ts';
import type { ClientAddress } from './public-port-tunnel.ts';
import type { CertSource } from './tls-servers.ts';
import type { Tunnel, TunnelDirectory } from './tunnel-directory.ts';

// The edge route `connect` (ALPN tunn-connect/1): TLS ends here with the relay's own
// certificate, HTTP/2 inside, and every stream goes to a ConnectServer backed by the relay's
// real parts: bearer tokens (revocation checked on every use), the tunnel directory, the same
// allow-list decision HTTP tunnels use, and a stream of the tunnel's kind to its agent. The
// carried streams are a ConnectionTable for live revocation, so a revoked token or a user
// who left the allow-list loses them on the next sweep, with a security event.

export interface ConnectRouteOptions {
  certs: CertSource;
  /** The relay's own name (its certificate is the one `tunn connect` verifies). */
  domain: string;
  ownContext(): SecureContext | undefined;
  tokens: TokenService;
  store: Store;
  directory: TunnelDirectory;
  /** The allow-list decision of HTTP tunnels (src/relay/access.ts). */
  allows(t: Tunnel, who: Principal): Promise<boolean>;
  recordEvent(e: RecordEvent): void;
  idleTimeoutMs: number;
  logger: Logger;
  /** In a cluster: tunnels other relays hold, reached over the link (cluster-wiring.ts). */
  elsewhere?: ConnectElsewhere;
}

export interface ConnectElsewhere {
  /** The kind of the tunnel another relay holds at `host` (normalised), if any. */
  kindOf(host: string): string | undefined;
  /** A link stream to the holder for this user: `check` (answered, no bytes) or `open`. Rejects FORBIDDEN/NOT_FOUND with a sentence for the user. */
  open(host: string, kind: ConnectKind, p: ConnectPrincipal, client: string, method: 'check' | 'open'): Promise<ClientHttp2Stream>;
}

export interface ConnectRoute {
  /** Takes a routed socket (ClientHello put back). */
  accept(socket: Socket): void;
  /** The carried streams, for live revocation. */
  readonly table: ConnectionTable;
  readonly server: ConnectServer;
  /** A `tunn connect` stream another relay carried here for a user it authenticated. */
  serveCarried(s: ServerHttp2Stream, who: ConnectPrincipal, host: string, kind: ConnectKind, method: 'check' | 'carry', client: ClientAddress): Promise<void>;
  close(): void;
}

/** A failed link stream as the refusal `tunn connect` shows its user. */
function refusalOf(host: string, err: unknown): Refusal {
  if (isTunnError(err, 'FORBIDDEN')) return { reason: 'forbidden', message: err.message };
  if (isTunnError(err, 'NOT_FOUND')) return { reason: 'not_found', message: `no tunnel ${host} is online: check the name, or ask its owner to start it` };
  return { reason: 'target_unreachable', message: `${host} is served by another relay of the cluster, which could not be reached (${errorMessage(err)}): try again in a moment` };
}

const linkClient = (c: ClientAddress): string => {
  const ip = cleanIp(c.address);
  return `${ip.includes(':') ? `[${ip}]` : ip}:${c.port}`;
};

const KINDS = new Set(['tcp', 'udp', 'tls']);
/** A PROXY v2 assertion is read once, when the connection starts. */
const ASSERTION_TTL_S = 60;

const principalOf = (p: ConnectPrincipal): Principal => ({ via: 'token', jti: p.credentialId ?? '', accountId: p.accountId ?? '', email: p.email, ...(p.kid && { kid: p.kid }) });

/** The user of a `tunn connect` stream as the link carries it to the holding relay (with the token's key, so retiring it cuts the stream there). */
export const linkUserOf = (p: ConnectPrincipal, method: 'check' | 'open'): NonNullable<ForwardRequest['connect']> => ({
  method,
  email: p.email,
  ...(p.accountId && { accountId: p.accountId }),
  ...(p.credentialId && { credentialId: p.credentialId }),
  ...(p.kid && { kid: p.kid }),
});

/** The user a relay carried a `tunn connect` stream here for (the inverse of linkUserOf). */
export const principalOfLinkUser = (u: NonNullable<ForwardRequest['connect']>): ConnectPrincipal => ({
  email: u.email,
  ...(u.accountId && { accountId: u.accountId }),
  ...(u.credentialId && { credentialId: u.credentialId }),
  ...(u.kid && { kid: u.kid }),
});

export function createConnectRoute(o: ConnectRouteOptions): ConnectRoute {
  const tunnelAt = (host: string): Tunnel | undefined => {
    const t = o.directory.get(normalizeHost(host));
    return t && KINDS.has(t.options.kind ?? 'http') ? t : undefined;
  };
  const server = new ConnectServer({
    idleTimeoutMs: o.idleTimeoutMs,
    async authenticate(token) {
      try {
        const b = await verifyBearer(o.tokens, o.store, token);
        return { email: b.email, accountId: b.accountId, credentialId: b.jti, ...(b.kid && { kid: b.kid }) };
      } catch (err) {
        if (!isTunnError(err)) throw err;
        const revoked = err.code === 'AUTH_TOKEN_REVOKED';
        o.recordEvent({ kind: revoked ? 'token_revoked_used' : 'token_invalid', detail: 'tunn connect' });
        return { reason: 'unauthenticated', message: `${revoked ? 'your token was revoked' : `your token is not valid here (${err.message})`}: run \`tunn login\` again, or pass a current token with --token-file` } satisfies Refusal;
      }
    },
    tunnel(host) {
      const t = tunnelAt(host);
      if (t) return { host: t.host, kind: t.options.kind as ConnectTunnel['kind'] };
      const h = normalizeHost(host);
      const kind = o.elsewhere?.kindOf(h);
      return kind && KINDS.has(kind) ? { host: h, kind: kind as ConnectTunnel['kind'], elsewhere: true } : undefined;
    },
    async decide(p, ct, client) {
      if (ct.elsewhere && o.elsewhere) {
        try {
          (await o.elsewhere.open(ct.host, ct.kind === 'udp' ? 'udp' : 'tcp', p, linkClient(client), 'check')).close();
          return undefined;
        } catch (err) {
          return refusalOf(ct.host, err);
        }
      }
      const t = tunnelAt(ct.host);
      if (!t) return { reason: 'not_found', message: `no tunnel ${ct.host} is online: check the name, or ask its owner to start it` };
      if (await o.allows(t, principalOf(p))) return undefined;
      o.recordEvent({ kind: 'visitor_denied', email: p.email, tunnel: t.host, accountId: t.accountId, detail: 'tunn connect' });
      return { reason: 'forbidden', message: `${p.email} is not on the allow-list of ${t.host}: ask its owner to add you (-a ${p.email})` };
    },
    async open(ct, p, client, kind) {
      if (ct.elsewhere && o.elsewhere) {
        try {
          return splicedH2Stream(await o.elsewhere.open(ct.host, kind, p, linkClient(client), 'open'));
        } catch (err) {
          return refusalOf(ct.host, err);
        }
      }
      const t = tunnelAt(ct.host);
      if (!t) return { reason: 'not_found', message: `no tunnel ${ct.host} is online: check the name, or ask its owner to start it` };
      // The target asked for PROXY v2: it gets the same relay-signed assertion HTTP tunnels send
      // in Tunn-Jwt-Assertion (audience the tunnel's host), to verify what it is told.
      const assertion = t.options.proxyProtocol && p.accountId ? (await o.tokens.issue({ accountId: p.accountId, kind: 'assertion', email: p.email, ttlSeconds: ASSERTION_TTL_S, record: false, extra: { aud: t.host, tunnel: t.host } })).token : undefined;
      // `tunn tls --backend tcp --terminate-at agent`: the user's TLS (run inside the connect stream) ends at the agent, never here.
      const streamKind = ct.kind === 'udp' ? 'udp' : t.options.kind === 'tls' && t.options.tlsEnds === 'agent' ? 'tls' : 'tcp';
      // A `tls` stream carries a TCP connection too: its agent gets the relay's --tcp-idle (tcp/udp get theirs from the session).
      const r = await openTunnelStream(o.directory, t, { kind: streamKind, client: cleanIp(client.address), clientPort: client.port, email: p.email, assertion, ...(streamKind === 'tls' ? { idleMs: o.idleTimeoutMs } : {}) });
      if (isRefusal(r)) t.metrics.drop(`connect-${r.reason}`);
      else if (ct.kind === 'udp') t.metrics.flows++;
      else t.metrics.connections++;
      return r;
    },
    onBytes: (host, fromClient, toClient) => {
      const m = o.directory.get(host)?.metrics;
      if (!m) return;
      m.bytesIn += fromClient;
      m.bytesOut += toClient;
    },
    onCarried: (e) => o.logger.debug({ host: e.host, email: e.email, outcome: e.outcome }, 'tunn connect stream ended'),
  });
  const h2 = http2.createServer();
  server.attach(h2);
  h2.on('sessionError', (err) => o.logger.debug({ err: errorMessage(err) }, 'tunn connect session failed'));
  const tlsServer = tls.createServer({
    SNICallback: (_name, cb) => {
      Promise.resolve(o.certs.contextFor(o.domain)).then(
        (ctx) => cb(null, ctx ?? o.ownContext()),
        () => cb(null, o.ownContext()),
      );
    },
    ALPNProtocols: [CONNECT_ALPN],
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  });
  tlsServer.on('secureConnection', (s) => h2.emit('connection', s));
  tlsServer.on('tlsClientError', (err) => o.logger.debug({ err: err.message }, 'tunn connect TLS handshake failed'));
  const connOf = (p: ConnectPrincipal, host: string): LiveConnection => ({ principals: [principalOf(p)], tunnel: o.directory.get(host) });
  const table: ConnectionTable = {
    get open() {
      return server.carried().map((c) => connOf(c.p, c.host));
    },
    cut(match) {
      const cutUsers = new Map<string, { p: ConnectPrincipal; host: string }>();
      const n = server.cut((p, host) => {
        if (!match(connOf(p, host))) return false;
        cutUsers.set(`${p.email}\0${host}`, { p, host });
        return true;
      });
      for (const { p, host } of cutUsers.values()) {
        o.recordEvent({ kind: 'connection_cut', email: p.email, tunnel: host, accountId: o.directory.get(host)?.accountId ?? p.accountId, detail: 'tunn connect streams cut: the credential was revoked or the user is no longer allowed' });
        o.logger.info({ host, email: p.email }, 'tunn connect streams cut (revoked or no longer allowed)');
      }
      return n;
    },
  };
  return {
    accept: (socket) => tlsServer.emit('connection', socket),
    table,
    server,
    serveCarried: (s, who, host, kind, method, client) => server.serveCarried(s, who, host, kind, method, client),
    close: () => {
      server.cut(() => true);
      h2.close();
    },
  };
}
