import { once } from 'node:events';
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type ServerHttp2Stream } from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { agentServerOptions, relaySessionOptions, AGENT_SESSION_WINDOW, SESSION_WINDOW } from '../../src/protocol/h2-options.ts';
import { TunnError } from '../../src/lib/errors.ts';
import { splicedH2Stream } from '../../src/protocol/h2-stream.ts';
import type { TunnelMetrics } from '../../src/relay/metrics.ts';
import type { PortTunnel } from '../../src/relay/public-port-tunnel.ts';
import { awaitStreamAnswer, type StreamAnswer } from '../../src/protocol/stream-refusal.ts';

// A real HTTP/2 session pair on loopback with the agent link's settings: the test's "relay" opens
// streams as the HTTP/2 client, its "agent" answers each with `onStream` (a kind handler). The
// reversal of roles on the real link (the agent dials, the relay is the client) changes nothing
// a stream handler sees.

export interface H2Pair {
  session: ClientHttp2Session;
  /** Opens a stream as the relay would, and waits for the agent's answer. */
  open(headers?: Record<string, string>): Promise<{ req: ClientHttp2Stream; answer: StreamAnswer }>;
  close(): Promise<void>;
}

export async function startH2Pair(onStream: (stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void): Promise<H2Pair> {
  const h2 = http2.createServer(agentServerOptions);
  h2.on('stream', (s, h) => onStream(s, h));
  h2.on('sessionError', () => {});
  // As src/agent/relay-session.ts does: the agent's end widens its connection window to AGENT_SESSION_WINDOW, the relay's
  // to SESSION_WINDOW (src/relay/agent-session.ts).
  h2.on('session', (s) => s.once('remoteSettings', () => s.setLocalWindowSize(AGENT_SESSION_WINDOW)));
  const server = net.createServer((socket) => h2.emit('connection', socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, relaySessionOptions);
  session.on('error', () => {});
  await once(session, 'connect');
  session.setLocalWindowSize(SESSION_WINDOW);
  return {
    session,
    async open(headers = {}) {
      const req = session.request({ ':method': 'CONNECT', ':authority': 'target.test', ...headers }, { endStream: false });
      req.on('error', () => {});
      return { req, answer: await awaitStreamAnswer(req) };
    },
    async close() {
      session.destroy();
      await new Promise((r) => server.close(r));
      h2.close();
    },
  };
}

/**
 * A tunnel as a public port sees it (src/relay/public-port-tunnel.ts), over a real HTTP/2 pair
 * whose agent side runs a kind handler: what phase 2 gets from the agent session.
 */
export function pairTunnel(pair: H2Pair, host: string, metrics: TunnelMetrics, admits: (ip: string) => boolean = () => true): PortTunnel {
  return {
    host,
    metrics,
    admits,
    async open(client) {
      const { req, answer } = await pair.open({ 'tunn-client': `${client.address}:${client.port}` });
      if (!answer.open) throw new TunnError('UNAVAILABLE', answer.refusal.message);
      return splicedH2Stream(req);
    },
  };
}
