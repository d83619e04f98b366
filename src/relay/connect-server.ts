import type { Http2Server, IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { spliceStreams, type SpliceOutcome, type SplicedStream } from '../lib/splice.ts';
import { TunnError } from '../lib/errors.ts';
import { readConnectRequest, type ConnectCheck, type ConnectKind } from '../protocol/connect.ts';
import { splicedH2Stream } from '../protocol/h2-stream.ts';
import { refusalResponse, type Refusal } from '../protocol/stream-refusal.ts';

// The relay's side of tunn-connect/1 (src/protocol/connect.ts), as a handler of HTTP/2 streams:
// the edge route `connect` (connect-route.ts) runs it on connections that chose ALPN tunn-connect/1 with the relay's
// real authentication, directory and policy behind ConnectDeps. Every request is decided again
// (token, tunnel, allow-list); each carried stream is kept per user, so revocation can cut it.

export interface ConnectPrincipal {
  email: string;
  accountId?: string;
  /** The token's id (jti) or the session behind it, for revocation. */
  credentialId?: string;
  /** The key that signed the token (retiring it cuts the user's streams). */
  kid?: string;
}

export interface ConnectTunnel {
  host: string;
  kind: 'tcp' | 'udp' | 'tls';
  /** Held by another relay of the cluster: decided and carried there, over the link. */
  elsewhere?: boolean;
}

export interface ConnectDeps {
  /** The user a bearer token stands for, or a refusal (unauthenticated: say how to sign in). */
  authenticate(token: string): Promise<ConnectPrincipal | Refusal>;
  /** The live tunnel serving `host` (already normalised), relay zone or custom domain. */
  tunnel(host: string): ConnectTunnel | undefined;
  /** undefined when the user may reach the tunnel, else the refusal (forbidden, with what to do). */
  decide(p: ConnectPrincipal, t: ConnectTunnel, client: { address: string; port: number }): Promise<Refusal | undefined>;
  /**
   * A stream of the tunnel's kind to its agent, for this user, or the agent's refusal (its
   * target is down…). `kind`: what the client asked for (a tunnel held by another relay is
   * reached with it over the cluster link).
   */
  open(t: ConnectTunnel, p: ConnectPrincipal, client: { address: string; port: number }, kind: ConnectKind): Promise<SplicedStream | Refusal>;
  /** Close a carried connection silent both ways this long (the relay's --idle-timeout). */
  idleTimeoutMs: number;
  /** Told when a carried stream ends (logs, metrics). */
  onCarried?(e: { host: string; email: string; outcome: SpliceOutcome }): void;
  /** Bytes carried (from the client, to the client) on a stream of `host`, as they pass (metrics). */
  onBytes?(host: string, fromClient: number, toClient: number): void;
}

const isRefusal = (v: ConnectPrincipal | Refusal): v is Refusal => 'reason' in v;

function refuse(s: ServerHttp2Stream, r: Refusal): void {
  if (s.destroyed || s.headersSent) return;
  const { headers, body } = refusalResponse(r);
  s.respond(headers);
  s.end(body);
}

export class ConnectServer {
  readonly #d: ConnectDeps;
  readonly #live = new Map<ServerHttp2Stream, { p: ConnectPrincipal; host: string; agent?: SplicedStream }>();

  constructor(deps: ConnectDeps) {
    this.#d = deps;
  }

  /** Serves every stream of `server` (an HTTP/2 server fed the tunn-connect/1 connections). */
  attach(server: Http2Server): void {
    server.on('stream', (s, h) => void this.handle(s, h));
  }

  /** Carried streams open now. */
  get live(): number {
    return this.#live.size;
  }

  /** Who each carried stream acts for, and to which tunnel host (live revocation reads them). */
  carried(): { p: ConnectPrincipal; host: string }[] {
    return [...this.#live.values()].map((v) => ({ p: v.p, host: v.host }));
  }

  /**
   * Resets the carried streams whose user matches (a revoked token or session, a group change):
   * the client's local connection is reset with them. Returns how many were cut.
   */
  cut(match: (p: ConnectPrincipal, host: string) => boolean): number {
    let n = 0;
    for (const [s, v] of this.#live) {
      if (!match(v.p, v.host)) continue;
      n++;
      splicedH2Stream(s).reset();
      v.agent?.reset();
    }
    return n;
  }

  async handle(s: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
    s.on('error', () => {});
    const r = readConnectRequest(headers);
    if (!r.ok) return refuse(s, { reason: 'bad_request', message: r.message });
    const { host, kind, token } = r.request;
    const who = await this.#d.authenticate(token);
    if (isRefusal(who)) return refuse(s, who);
    const sock = s.session?.socket;
    const client = { address: sock?.remoteAddress ?? '', port: sock?.remotePort ?? 0 };
    return this.#serve(s, who, host, kind, r.method, client, {
      refuse: (refusal) => refuse(s, refusal),
      ok: (check) => {
        if (!check) return void s.respond({ ':status': 200 });
        s.respond({ ':status': 200, 'content-type': 'application/json' });
        s.end(JSON.stringify(check));
      },
    });
  }

  /**
   * A stream another relay of the cluster carried here for a user it authenticated (the link,
   * src/protocol/cluster-link.ts): decided and carried as one of this relay's own, kept for live
   * revocation. Resolves once answered 200; rejects before answering with the refusal as a
   * TunnError (FORBIDDEN, NOT_FOUND, UNAVAILABLE) whose message is for the user.
   */
  serveCarried(s: ServerHttp2Stream, who: ConnectPrincipal, host: string, kind: ConnectKind, method: 'check' | 'carry', client: { address: string; port: number }): Promise<void> {
    s.on('error', () => {});
    return new Promise((resolve, reject) => {
      void this.#serve(s, who, host, kind, method, client, {
        refuse: (r) => reject(new TunnError(r.reason === 'forbidden' ? 'FORBIDDEN' : r.reason === 'not_found' ? 'NOT_FOUND' : 'UNAVAILABLE', r.message)),
        ok: (check) => {
          if (!s.destroyed) s.respond({ ':status': 200 }, { endStream: !!check });
          resolve();
        },
      });
    });
  }

  async #serve(s: ServerHttp2Stream, who: ConnectPrincipal, host: string, kind: ConnectKind, method: 'check' | 'carry', client: { address: string; port: number }, answer: Answer): Promise<void> {
    const t = this.#d.tunnel(host);
    if (!t) return answer.refuse({ reason: 'not_found', message: `no tunnel ${host} is online: check the name, or ask its owner to start it` });
    // A tunnel held by another relay: its policy is there, and the holder decides when the
    // stream is carried (a check is asked of the holder by decide()).
    const denied = t.elsewhere && method === 'carry' ? undefined : await this.#d.decide(who, t, client);
    if (denied) return answer.refuse(denied);
    if (method === 'check') return answer.ok({ allowed: true, host: t.host, tunnelKind: t.kind, email: who.email });
    if ((t.kind === 'udp') !== (kind === 'udp')) return answer.refuse({ reason: 'bad_request', message: mismatch(t, kind) });
    const entry: { p: ConnectPrincipal; host: string; agent?: SplicedStream } = { p: who, host: t.host };
    this.#live.set(s, entry);
    s.once('close', () => this.#live.delete(s));
    let agent: SplicedStream | Refusal;
    try {
      agent = await this.#d.open(t, who, client, kind);
    } catch (err) {
      agent = { reason: 'target_unreachable', message: `${t.host}: the agent could not be reached (${(err as Error).message})` };
    }
    if ('reason' in agent) {
      this.#live.delete(s);
      return answer.refuse(agent);
    }
    if (s.destroyed || s.closed || !this.#live.has(s)) return agent.reset();
    entry.agent = agent;
    answer.ok();
    const onBytes = this.#d.onBytes;
    const outcome = await spliceStreams(splicedH2Stream(s), agent, { idleTimeoutMs: this.#d.idleTimeoutMs, onBytes: onBytes && ((a, b) => onBytes(t.host, a, b)) });
    this.#d.onCarried?.({ host: t.host, email: who.email, outcome });
  }
}

/** How a decided stream is answered: on a tunn-connect/1 stream, or on a stream of the cluster link. */
interface Answer {
  refuse(r: Refusal): void;
  /** Accepted: a check's answer, or (none) the carried bytes follow. */
  ok(check?: ConnectCheck): void;
}

function mismatch(t: ConnectTunnel, kind: ConnectKind): string {
  return t.kind === 'udp' ? `${t.host} is a udp tunnel: connect with --udp` : `${t.host} is a ${t.kind} tunnel, which carries TCP: connect without --udp`;
}
