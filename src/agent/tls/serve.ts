import type { ServerHttp2Stream } from 'node:http2';
import { mkdirSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { TlsAlpn01Solver } from '../../acme/tls-alpn01.ts';
import { isTunnToken } from '../../auth/bearer.ts';
import { RateLimiter } from '../../auth/rate-limit.ts';
import type { Clock } from '../../lib/clock.ts';
import { TunnError } from '../../lib/errors.ts';
import { isInZone } from '../../dns/zone.ts';
import { loadSecretKey, SecretBox } from '../../lib/secret-box.ts';
import { hostnameOf } from '../../auth/agent-decisions.ts';
import { AGENT_EVENT_KINDS, type AcmeAdvert, type AgentEventKind, type AgentEventReport, type TlsStateReport } from '../../protocol/messages.ts';
import type { AgentTunnelRef } from '../agent.ts';
import { proxyHeaderFor } from '../kind-handlers.ts';
import type { StreamCarrier } from '../kinds/carrier.ts';
import { carryTcp } from '../kinds/tcp.ts';
import type { DataStreamRequest, StreamHandlers } from '../stream-handlers.ts';
import { localhostAwareLookup, type Target } from '../target.ts';
import { AgentAcme } from './acme-agent.ts';
import { AgentGate, type AgentTunnelPolicy } from './agent-gate.ts';
import { agentHttpHandler, type AgentHttpHandler } from './agent-http.ts';
import { AgentTls, type CertificateSource } from './agent-tls.ts';
import { answerTlsAlpn01 } from './alpn-responder.ts';
import { AgentCertStore } from './cert-store.ts';
import { TlsContexts } from './contexts.ts';
import { RequestedDns01Solver } from './dns01-requester.ts';
import { relayDecisionSource, relayDns01Requester, type AskRelay } from './relay-questions.ts';
import { TlsTerminator, type ByteServe } from './terminator.ts';

// One agent tunnel whose TLS ends here (issue 12), put together: the relay hands the agent a
// visitor's raw TLS (stream kind `tls`) and the agent terminates it (terminator.ts) with its own
// certificate (agent-tls.ts: ACME or --tls-cert files), runs the gate per request with the relay
// as decision point over the control stream (relay-questions.ts), then forwards to the target
// (agent-http.ts). TLS-ALPN-01 validations the relay routes here (kind `acme-tls-alpn`) are
// answered with the challenge certificate. Each change of where TLS ends is reported to the
// relay (tls-state), which routes visitors here only from then on.
// With `tcp` (`tunn tls --backend tcp --terminate-at agent`) there is no HTTP and no gate: each
// terminated connection's decrypted bytes go to the target as one plain TCP connection (a PROXY
// v2 header first with --proxy-protocol), and who may connect was decided by the relay before
// it carried the bytes (public, --allow-ip, `tunn connect`), plus --client-ca here.

export interface AgentTerminatedTlsOptions {
  tunnelId: string;
  policy: AgentTunnelPolicy;
  target: Target;
  hostHeader?: string;
  allowUpgrade?: string[];
  verifyTargetTls?: boolean;
  /** The relay's public origin (its login page). */
  relayUrl: string;
  /** The agent's TLS state directory (`<config>/tls`): sealed keys, certificates, ACME account. */
  stateDir: string;
  /** TUNN_SECRET_KEY, if set (else a key file in stateDir). */
  secretKey?: string;
  /** --tls-cert/--tls-key, or ACME settings (undefined fields: what the relay advertises). */
  files?: { chainPem: string; keyPem: string };
  acme?: Partial<AcmeAdvert>;
  clientCaPem?: string;
  keepKey: boolean;
  /** `tunn tls --backend tcp`: forward each terminated connection to the target as plain TCP instead of serving HTTP. */
  tcp?: { proxyProtocol: boolean; alpn?: string[]; idleTimeoutMs?: number; onTargetError?(message: string): void };
  /** The gate's clock (sessions, decision cache, rate limits). */
  clock: Clock;
  /**
   * The certificate clock (renewal and retry times) only; default `clock`. End-to-end tests move
   * it (TUNN_TEST_CLOCK_FILE, cli/test-clock.ts) to reach a renewal; the gate never reads it.
   */
  renewalClock?: Clock;
  /** How long after a failed issuance to try again, and how often renewals are looked at (default 60 s). */
  retryMs?: number;
  ask: AskRelay;
  /** Sends a state to the relay (Agent.reportTls). */
  report(tunnelId: string, s: TlsStateReport): void;
  /** Sends a refusal of the agent's gate to the relay's security events (Agent.reportEvent): never a request's path, headers or body. */
  reportEvent?(tunnelId: string, e: AgentEventReport): void;
  /** Each change, for the user (status line, `--json` tls event). */
  onState(s: TlsStateReport): void;
  onError(err: unknown): void;
}

export interface AgentTerminatedTls {
  readonly streamHandlers: StreamHandlers<AgentTunnelRef>;
  /** The tunnel is live at `host`: get (or load) its certificate, with the relay's advertised ACME CA as default. */
  start(host: string, advertised: AcmeAdvert | undefined): Promise<TlsStateReport[]>;
  /** Renewals and retries now (tests with a manual clock; the timer calls it every minute). */
  tick(): Promise<void>;
  close(): void;
}

export function agentTerminatedTls(o: AgentTerminatedTlsOptions): AgentTerminatedTls {
  const contexts = new TlsContexts({ clientCaPem: o.clientCaPem });
  // Security events for the relay: host (the connection's SNI; the gate runs only once the Host
  // matched it), kind, visitor address, email when known. Nothing of the request itself.
  const reportEvent = (host: string, kind: AgentEventKind, ip: string, email?: string): void => o.reportEvent?.(o.tunnelId, { host: hostnameOf(host), kind, ip, ...(email ? { email } : {}) });
  const gate = new AgentGate({
    source: relayDecisionSource(o.ask),
    relayUrl: o.relayUrl,
    clock: o.clock,
    rateLimiter: new RateLimiter({ clock: o.clock }),
    onError: o.onError,
    record: (e, req) => {
      if ((AGENT_EVENT_KINDS as readonly string[]).includes(e.kind)) reportEvent(req.host, e.kind as AgentEventKind, req.clientIp, e.email);
    },
  });
  const http: AgentHttpHandler = agentHttpHandler({
    gate,
    tunnel: o.policy,
    target: o.target,
    hostHeader: o.hostHeader,
    allowUpgrade: o.allowUpgrade,
    isTunnCredential: (authorization) => isTunnToken(authorization, 'tunn'),
    onMisdirected: (ip, servername) => reportEvent(servername, 'host_mismatch', ip),
    onError: o.onError,
  });
  const terminator = new TlsTerminator({ contexts, handler: http, onTlsError: (err) => o.onError(err), onClientCertRefused: (ip, servername) => reportEvent(servername, 'client_cert_refused', ip) });
  const alpn = new TlsAlpn01Solver();
  let tls: AgentTls | undefined;
  let started: string | undefined;
  // --backend tcp: the decrypted connection, to the target as plain TCP (as the kind `tcp` handler does for relay-terminated TLS).
  const toTarget = (tcp: NonNullable<AgentTerminatedTlsOptions['tcp']>, stream: ServerHttp2Stream, req: DataStreamRequest): ByteServe => ({
    alpn: tcp.alpn,
    connection(socket: TLSSocket): void {
      const carrier: StreamCarrier = {
        stream: socket,
        accept() {},
        refuse(r) {
          tcp.onTargetError?.(r.message);
          socket.destroy();
          stream.destroy();
        },
        abort() {
          socket.destroy();
          stream.destroy();
        },
        wasReset: () => false,
      };
      const proxyHeader = proxyHeaderFor({ id: o.tunnelId, target: o.target, proxyProtocol: tcp.proxyProtocol, ready: started ? { host: started } : undefined }, req);
      void carryTcp(carrier, { target: o.target, idleTimeoutMs: req.idleMs ?? tcp.idleTimeoutMs, proxyHeader, lookup: localhostAwareLookup as never });
    },
  });
  const accepted = (stream: ServerHttp2Stream, t: AgentTunnelRef): boolean => {
    if (t.id !== o.tunnelId) return false;
    stream.respond({ ':status': 200 });
    return true;
  };
  return {
    streamHandlers: {
      tls: (stream, t, req) => void (accepted(stream, t) ? terminator.accept(stream, req.clientIp, o.tcp && toTarget(o.tcp, stream, req)) : stream.close()),
      'acme-tls-alpn': (stream, t) => void (accepted(stream, t) ? answerTlsAlpn01(stream, alpn, o.onError) : stream.close()),
    },
    async start(host, advertised) {
      if (started === host) return tls?.states() ?? [];
      tls?.stop();
      started = host;
      tls = new AgentTls({
        names: [host],
        contexts,
        source: certificateSource(o, host, advertised, alpn),
        clock: o.renewalClock ?? o.clock,
        retryMs: o.retryMs,
        onState: (s) => {
          o.report(o.tunnelId, s);
          o.onState(s);
        },
      });
      const states = await tls.start();
      tls.startTimer(o.retryMs);
      return states;
    },
    tick: async () => tls?.tick(),
    close() {
      tls?.stop();
      http.close();
      terminator.close();
    },
  };
}

function certificateSource(o: AgentTerminatedTlsOptions, host: string, advertised: AcmeAdvert | undefined, alpn: TlsAlpn01Solver): CertificateSource {
  if (o.files) return { kind: 'files', ...o.files };
  const directory = o.acme?.directory ?? advertised?.directory;
  if (!directory) throw new TunnError('CONFIG_INVALID', 'no ACME CA for the agent: this relay advertises none; pass --acme-directory URL (and --acme-email), or serve your own certificate with --tls-cert/--tls-key');
  mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
  const box = new SecretBox(loadSecretKey(o.secretKey, join(o.stateDir, 'secret.key')));
  const acme = new AgentAcme({
    directory,
    email: o.acme?.email ?? advertised?.email,
    caPem: o.acme?.caPem ?? advertised?.caPem,
    store: new AgentCertStore(o.stateDir, box),
    // DNS-01 through the relay for names in its zone; TLS-ALPN-01 (routed by the relay) for custom domains.
    solvers: isInZone(host, new URL(o.relayUrl).hostname) ? [new RequestedDns01Solver(relayDns01Requester(o.ask))] : [alpn],
    keepKey: o.keepKey,
    clock: o.renewalClock ?? o.clock,
  });
  return { kind: 'acme', acme };
}
