import { request as httpRequest, STATUS_CODES, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { AgentCredential } from '../../auth/agent-decisions.ts';
import { forwardRequestHeaders } from '../../auth/forward-headers.ts';
import type { GateDecision, GateRequest } from '../../auth/gate.ts';
import { hostnameOf } from '../../auth/agent-decisions.ts';
import type { MessageHead } from '../../lib/http1.ts';
import { localhostAwareLookup, type Target } from '../target.ts';
import { credentialOf, DECISION_TTL_MS, type AgentGate, type AgentTunnelPolicy } from './agent-gate.ts';
import type { TlsHandler, VisitorConnection } from './terminator.ts';

// What the agent does with each request on a connection whose TLS it terminated: the agent's
// gate first (agent-gate.ts), then the local target, with the header rules the relay applies
// (src/auth/forward-headers.ts: inbound Tunn-*, X-Forwarded-*, … dropped in every spelling,
// tunn's cookies stripped) plus Tunn-User-Email and the relay-signed Tunn-Jwt-Assertion.
// Every request of a kept-alive connection passes the gate; a WebSocket passes it when it
// opens and is asked about again every DECISION_TTL_MS, and cut when the answer is no (or
// when there is no answer: fail closed).

export interface AgentHttpOptions {
  gate: AgentGate;
  tunnel: AgentTunnelPolicy;
  target: Target;
  /** Send this Host to the target (--host-header). */
  hostHeader?: string;
  /** Upgrade protocols passed besides WebSocket (--allow-upgrade). */
  allowUpgrade?: string[];
  /**
   * Whether an Authorization value is one of tunn's own tokens (stripped on every path, public
   * tunnels too, as at the relay). Phase 2: from the relay's token issuer (bearer.ts isTunnToken).
   */
  isTunnCredential?: (authorization: string) => boolean;
  /** A request whose Host named another server than its TLS handshake was refused (421): `servername` is the SNI. */
  onMisdirected?: (clientIp: string, servername: string) => void;
  /** How often open WebSockets are re-checked (default DECISION_TTL_MS). */
  recheckMs?: number;
  onError?: (err: unknown) => void;
}

interface Live {
  socket: Duplex;
  host: string;
  credential: AgentCredential;
  clientIp: string;
}

export interface AgentHttpHandler extends TlsHandler {
  /** Asks again about every open upgraded connection now; closes those no longer allowed. Resolves to how many were closed. */
  recheckLive(): Promise<number>;
  close(): void;
}

const RESPONSE_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'trailer']);

export function agentHttpHandler(o: AgentHttpOptions): AgentHttpHandler {
  const live = new Set<Live>();
  let timer: NodeJS.Timeout | undefined;
  const watch = (l: Live): void => {
    live.add(l);
    l.socket.once('close', () => live.delete(l));
    if (!timer) {
      timer = setInterval(() => void recheckLive(), o.recheckMs ?? DECISION_TTL_MS);
      timer.unref();
    }
  };
  const recheckLive = async (): Promise<number> => {
    let closed = 0;
    await Promise.all([...live].map(async (l) => {
      if (await o.gate.stillAllowed(l.host, l.credential, l.clientIp)) return;
      closed++;
      live.delete(l);
      l.socket.destroy();
    }));
    return closed;
  };

  return {
    async request(req, res, conn) {
      const { gateReq, head } = describe(req, conn, false);
      const misdirected = checkHost(gateReq, conn);
      if (misdirected) {
        o.onMisdirected?.(conn.clientIp, conn.servername);
        req.resume();
        return respond(res, misdirected);
      }
      const d = await o.gate.check(gateReq, o.tunnel);
      if (d.kind === 'respond') {
        req.resume();
        return respond(res, d);
      }
      const headers = forwardRequestHeaders(head, { clientIp: conn.clientIp, proto: 'https', host: gateReq.host, hostOverride: o.hostHeader, isTunnCredential: o.isTunnCredential, remove: d.removeHeaders, set: d.setHeaders });
      const send = o.target.protocol === 'https' ? httpsRequest : httpRequest;
      const up = send({ host: o.target.host, port: o.target.port, method: req.method, path: req.url, headers: headers.flat() as unknown as OutgoingHttpHeaders, lookup: localhostAwareLookup, setHost: false });
      up.on('response', (r) => {
        const out: string[] = [];
        for (let i = 0; i < r.rawHeaders.length; i += 2) if (!RESPONSE_HOP.has(r.rawHeaders[i]!.toLowerCase())) out.push(r.rawHeaders[i]!, r.rawHeaders[i + 1]!);
        res.writeHead(r.statusCode ?? 502, r.statusMessage, out);
        r.pipe(res);
      });
      up.on('error', (err) => {
        o.onError?.(err);
        if (!res.headersSent) respond(res, { kind: 'respond', status: 502, headers: [['content-type', 'text/plain; charset=utf-8']], body: `the agent could not reach ${o.target.display}: ${(err as Error).message}\n` });
        else res.destroy();
      });
      res.once('close', () => up.destroy());
      req.pipe(up);
    },

    async upgrade(req, socket, rest, conn) {
      const { gateReq, head } = describe(req, conn, true);
      const protocol = (req.headers.upgrade ?? '').trim();
      const allowed = protocol.toLowerCase() === 'websocket' || (o.allowUpgrade ?? []).some((p) => p.toLowerCase() === protocol.toLowerCase());
      const misdirected = checkHost(gateReq, conn);
      if (misdirected) o.onMisdirected?.(conn.clientIp, conn.servername);
      const refusal = misdirected ?? (allowed ? undefined : plain(400, `the Upgrade "${protocol.slice(0, 40)}" is not passed to this tunnel's target (only WebSocket, or protocols the owner allows with --allow-upgrade)`));
      const d = refusal ?? (await o.gate.check(gateReq, o.tunnel));
      if (d.kind === 'respond') return void socket.end(rawResponse(d));
      const credential = credentialOf(gateReq, o.tunnel);
      const headers = forwardRequestHeaders(head, { clientIp: conn.clientIp, proto: 'https', host: gateReq.host, hostOverride: o.hostHeader, isTunnCredential: o.isTunnCredential, upgrade: protocol, remove: d.removeHeaders, set: d.setHeaders });
      const t = o.target;
      const up = t.protocol === 'https' ? tlsConnect({ host: t.host, port: t.port, servername: t.host, lookup: localhostAwareLookup }) : netConnect({ host: t.host, port: t.port, lookup: localhostAwareLookup });
      up.once('error', (err) => {
        o.onError?.(err);
        socket.destroy();
      });
      socket.once('error', () => up.destroy());
      socket.once('close', () => up.destroy());
      up.once('close', () => socket.destroy());
      up.write(`${req.method} ${req.url} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
      if (rest.length) up.write(rest);
      up.pipe(socket);
      socket.pipe(up);
      if (credential) watch({ socket, host: gateReq.host, credential, clientIp: conn.clientIp });
    },

    recheckLive,
    close() {
      if (timer) clearInterval(timer);
      for (const l of live) l.socket.destroy();
      live.clear();
    },
  };
}

/** The gate's view and the header list of a request the terminator parsed. */
function describe(req: IncomingMessage, conn: VisitorConnection, upgrade: boolean): { gateReq: GateRequest; head: MessageHead } {
  const headers: [string, string][] = [];
  const names: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
    names.push(req.rawHeaders[i]!.toLowerCase());
  }
  const host = req.headers.host ?? conn.servername;
  const gateReq: GateRequest = { method: req.method ?? 'GET', path: req.url ?? '/', host, secure: true, clientIp: conn.clientIp, headers: headers.map(([k, v], i) => [names[i]!, v]), upgrade };
  const head: MessageHead = { method: req.method ?? 'GET', target: req.url ?? '/', status: 0, reason: '', versionMinor: req.httpVersionMinor === 0 ? 0 : 1, headers, names, size: 0 };
  return { gateReq, head };
}

/**
 * 421 when the Host names another server than the TLS handshake did: the decision and the
 * assertion are for the Host, so it must be the name the certificate was chosen for.
 */
function checkHost(req: GateRequest, conn: VisitorConnection): Respond | undefined {
  if (hostnameOf(req.host) === hostnameOf(conn.servername)) return undefined;
  return plain(421, `this connection was opened for ${hostnameOf(conn.servername)}; open a new one for ${hostnameOf(req.host).slice(0, 253)}\n`);
}

type Respond = Extract<GateDecision, { kind: 'respond' }>;

function plain(status: number, message: string): Respond {
  return { kind: 'respond', status, headers: [['content-type', 'text/plain; charset=utf-8'], ['cache-control', 'no-store']], body: message };
}

function respond(res: ServerResponse, d: Respond): void {
  const body = typeof d.body === 'string' ? Buffer.from(d.body) : d.body;
  res.writeHead(d.status, [...d.headers.flat(), 'content-length', String(body.length)]);
  res.end(body);
}

function rawResponse(d: GateDecision): Buffer {
  if (d.kind !== 'respond') return Buffer.alloc(0);
  const body = typeof d.body === 'string' ? Buffer.from(d.body) : d.body;
  const head = `HTTP/1.1 ${d.status} ${STATUS_CODES[d.status] ?? 'Refused'}\r\n${d.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}
