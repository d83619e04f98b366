import { once } from 'node:events';
import http2, { type ClientHttp2Session } from 'node:http2';
import type { LookupFunction } from 'node:net';
import tls, { rootCertificates } from 'node:tls';
import { errorMessage, TunnError, type TunnErrorCode } from '../lib/errors.ts';
import type { SplicedStream } from '../lib/splice.ts';
import { CONNECT_ALPN, connectCheckSchema, connectHeaders, type ConnectCheck, type ConnectKind } from '../protocol/connect.ts';
import { relaySessionOptions } from '../protocol/h2-options.ts';
import { splicedH2Stream } from '../protocol/h2-stream.ts';
import { awaitStreamAnswer, readRefusal, type Refusal } from '../protocol/stream-refusal.ts';

// The client side of tunn-connect/1 (src/protocol/connect.ts): one TLS connection to the relay's
// HTTPS port with ALPN tunn-connect/1, one HTTP/2 session on it, one stream per carried
// connection or UDP flow. A session that dies is replaced on the next stream.

export interface ConnectClientOptions {
  /** The relay, e.g. https://tunn.example.com (its HTTPS port carries tunn-connect/1 too). */
  relayUrl: string;
  token: string;
  /** Extra CA (PEM) to trust for the relay, e.g. its dev CA. */
  relayCa?: string;
  /** The tunnel's host, e.g. db.tunn.example.com or db.example.com (a custom domain). */
  host: string;
  kind: ConnectKind;
  lookup?: LookupFunction;
}

const REFUSAL_CODES: Partial<Record<Refusal['reason'], TunnErrorCode>> = { unauthenticated: 'AUTH_INVALID_TOKEN', forbidden: 'FORBIDDEN', not_found: 'NOT_FOUND', limit_reached: 'RATE_LIMITED', bad_request: 'INVALID_INPUT' };

/** A refusal as the error a command prints: the relay's (or agent's) own message. */
export function refusalError(r: Refusal): TunnError {
  return new TunnError(REFUSAL_CODES[r.reason] ?? 'UNAVAILABLE', r.message);
}

export class ConnectClient {
  readonly #o: ConnectClientOptions;
  #session: Promise<ClientHttp2Session> | undefined;

  constructor(o: ConnectClientOptions) {
    this.#o = o;
  }

  /** Asks the relay whether this user may reach the tunnel; throws its refusal as a TunnError. */
  async check(): Promise<ConnectCheck> {
    const session = await this.#sessionNow();
    const req = session.request(connectHeaders('check', this.#request()));
    req.on('error', () => {});
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    let body = '';
    req.setEncoding('utf8');
    for await (const chunk of req) if (body.length < 64 * 1024) body += chunk as string;
    const status = Number(headers[':status']);
    if (status !== 200) throw refusalError(readRefusal(status, headers, body));
    let parsed;
    try {
      parsed = connectCheckSchema.safeParse(JSON.parse(body));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) throw new TunnError('PROTOCOL_ERROR', `${this.#origin()} answered the tunn-connect check with something this tunn does not understand: is the relay a matching version?`);
    return parsed.data;
  }

  /** Opens one stream to the tunnel (a connection, or a UDP flow); throws the refusal with its message. */
  async open(): Promise<SplicedStream> {
    const session = await this.#sessionNow();
    const req = session.request(connectHeaders('carry', this.#request()), { endStream: false });
    req.on('error', () => {});
    const answer = await awaitStreamAnswer(req);
    if (!answer.open) throw refusalError(answer.refusal);
    return splicedH2Stream(req);
  }

  close(): void {
    void this.#session?.then((s) => s.close(), () => {});
    this.#session = undefined;
  }

  #request() {
    return { host: this.#o.host, kind: this.#o.kind, token: this.#o.token };
  }

  #origin(): string {
    return new URL(this.#o.relayUrl).origin;
  }

  async #sessionNow(): Promise<ClientHttp2Session> {
    if (this.#session) {
      const s = await this.#session.catch(() => undefined);
      if (s && !s.closed && !s.destroyed) return s;
    }
    this.#session = this.#dial();
    return this.#session;
  }

  async #dial(): Promise<ClientHttp2Session> {
    const u = new URL(this.#o.relayUrl);
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const socket = tls.connect({
      host,
      port: Number(u.port || 443),
      servername: /^[\d.]+$|:/.test(host) ? undefined : host,
      ALPNProtocols: [CONNECT_ALPN],
      ca: this.#o.relayCa ? [...rootCertificates, this.#o.relayCa] : undefined,
      lookup: this.#o.lookup,
    });
    try {
      await once(socket, 'secureConnect');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      const hint = code === 'ECONNREFUSED' ? ' (is the relay running?)' : /CERT|SELF_SIGNED/.test(code) ? " (pass the relay's CA with --relay-ca)" : '';
      throw new TunnError('UNAVAILABLE', `cannot reach ${u.origin}: ${code || errorMessage(err)}${hint}`);
    }
    if (socket.alpnProtocol !== CONNECT_ALPN) {
      socket.destroy();
      throw new TunnError('RELAY_NOT_A_RELAY', `${u.origin} does not speak ${CONNECT_ALPN} (it chose ${socket.alpnProtocol || 'no protocol'}): is it a tunn relay with tcp/udp tunnels?`);
    }
    const session = http2.connect(u.origin, { ...relaySessionOptions, createConnection: () => socket });
    session.on('error', () => {});
    await once(session, 'connect');
    return session;
  }
}
