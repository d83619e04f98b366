import type { Agent, AgentConfig } from '../agent/agent.ts';
import { agentTerminatedTls, type AgentTerminatedTls } from '../agent/tls/serve.ts';
import type { AgentOptions } from '../config/config.ts';
import { systemClock } from '../lib/clock.ts';
import { errorMessage } from '../lib/errors.ts';
import type { TlsStateReport } from '../protocol/messages.ts';
import { testRetryMs, type AgentTlsSettings } from './agent-tls-flags.ts';
import { printJson } from './output.ts';
import { agentTlsDir } from './run-agent-cert.ts';
import { testClockFrom } from './test-clock.ts';

// `tunn <target> --terminate-at agent` (issue 12): the agent's config gets the tunnel's TLS
// settings (tlsEnds, --no-fallback) and the stream handlers for `tls` / `acme-tls-alpn`; once the
// tunnel is live the agent gets its certificate and tells the relay. The user sees where TLS
// ends each time it changes: a status line, or `{"event":"tls",…}` with --json.
// The same for `tunn tls --backend tcp --terminate-at agent` (run-kind.ts): the tunnel's kind
// says so, and the agent then forwards each terminated connection to the target as plain TCP.

/** What the user sees for a state: "agent (until 2027-03-01, pin …)" or "relay (fallback: why)". */
export function describeTls(s: TlsStateReport): string {
  if (s.terminatedAt === 'agent') {
    const until = s.notAfter ? `until ${new Date(s.notAfter).toISOString().slice(0, 10)}` : 'certificate ready';
    return `agent (${until}${s.pin ? `, pin sha256//${s.pin}` : ''})${s.reason ? ` — ${s.reason}` : ''}`;
  }
  return `relay (fallback: ${s.reason ?? 'agent certificate pending'})`;
}

export function tlsEvent(s: TlsStateReport): Record<string, unknown> {
  return { event: 'tls', name: s.name, terminatedAt: s.terminatedAt, ...(s.reason ? { reason: s.reason } : {}), ...(s.notAfter ? { notAfter: new Date(s.notAfter).toISOString() } : {}), ...(s.pin ? { pin: s.pin } : {}) };
}

export interface AgentTlsWiring {
  config: AgentConfig;
  /** Call once the agent exists: starts the certificate when the tunnel is live. */
  attach(agent: Agent): void;
  close(): void;
}

/** Adds TLS that ends at the agent to `config` (its first tunnel). */
export function wireAgentTls(config: AgentConfig, o: AgentOptions, s: AgentTlsSettings, env: NodeJS.ProcessEnv = process.env): AgentTlsWiring {
  let agent: Agent | undefined;
  let host: string | undefined;
  const tunnel = config.tunnels[0]!;
  // `tunn tls --backend tcp`: connections go to the target as plain TCP; a private one has no relay fallback.
  const tcp = tunnel.kind === 'tls';
  const noFallback = s.clientCaPem ? '--client-ca implies --no-fallback' : '--no-fallback';
  const pending = !tcp || tunnel.public ? (s.fallback ? 'agent certificate pending' : `agent certificate pending; ${noFallback}: visitors fail the handshake until it is ready`) : 'agent certificate pending; a private tls tunnel has no relay fallback: `tunn connect` users fail the handshake until it is ready';
  const show = (st: TlsStateReport): void => {
    if (o.json) printJson(tlsEvent(st));
    else process.stdout.write(`   TLS: ${describeTls(st)}\n`);
  };
  // TUNN_TEST_CLOCK_FILE (tests only, as on the relay; see test-clock.ts): an offset for the
  // certificate clock alone (renewal and retry times), never the gate's (sessions, decisions,
  // rate limits). A change runs the renewal check at once, as the timer would at that time.
  const testClock = testClockFrom(env);
  const tls: AgentTerminatedTls = agentTerminatedTls({
    tunnelId: 't0',
    policy: { tunnelId: 't0', public: tunnel.public, basicAuth: tunnel.basicAuth, rateLimit: tunnel.rateLimit },
    target: tunnel.target,
    hostHeader: tunnel.hostHeader,
    allowUpgrade: tunnel.allowUpgrade,
    relayUrl: config.relayUrl,
    stateDir: agentTlsDir(env),
    secretKey: env.TUNN_SECRET_KEY,
    files: s.files,
    acme: s.acme,
    clientCaPem: s.clientCaPem,
    keepKey: s.keepKey,
    ...(tcp ? { tcp: { proxyProtocol: tunnel.proxyProtocol === true, alpn: s.alpn, onTargetError: (m: string) => agent?.emit('notice', `${host ?? tunnel.name ?? 't0'}: ${m}`) } } : {}),
    clock: systemClock,
    renewalClock: testClock?.clock,
    // Tests only: a CA outage in an end-to-end test is retried in seconds, not a minute.
    retryMs: testRetryMs(env.TUNN_TEST_AGENT_TLS_RETRY_MS),
    ask: (r, t) => (agent ? agent.ask(r, t) : Promise.reject(new Error('the agent is not started'))),
    report: (id, st) => agent?.reportTls(id, st),
    reportEvent: (id, e) => agent?.reportEvent(id, e),
    onState: show,
    onError: (err) => agent?.emit('debug', `TLS at the agent: ${errorMessage(err)}`),
  });
  const tunnels = config.tunnels.map((t, i) => (i === 0 ? { ...t, tlsEnds: 'agent' as const, ...(s.fallback ? {} : { tlsFallback: false }), ...(s.clientCaPem ? { clientCertRequired: true } : {}) } : t));
  const unwatch = testClock?.onChange(() => void tls.tick().catch((err: unknown) => agent?.emit('debug', `TLS at the agent: ${errorMessage(err)}`)));
  return {
    config: { ...config, tunnels, streamHandlers: { ...config.streamHandlers, ...tls.streamHandlers } },
    attach(a) {
      agent = a;
      a.on('ready', (t) => {
        host = t.host;
        show({ name: t.host, terminatedAt: 'relay', reason: pending });
        tls.start(t.host, a.relayAcme).catch((err: unknown) => {
          // No certificate source at all (no ACME CA anywhere): the relay keeps terminating, and the user is told how to fix it.
          const st: TlsStateReport = { name: t.host, terminatedAt: 'relay', reason: errorMessage(err) };
          a.reportTls('t0', st);
          show(st);
        });
      });
    },
    close() {
      unwatch?.();
      tls.close();
    },
  };
}
