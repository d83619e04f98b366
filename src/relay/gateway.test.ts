import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { count, listen, until } from '../../test/support/gateway-kit.ts';
import { silentLogger } from '../lib/logger.ts';
import { openDataStream } from './agent-session.ts';
import { Gateway, MAX_PIPELINED } from './gateway.ts';
import { RelayMetrics } from './metrics.ts';
import { TunnelRegistry, type SessionRef } from './registry.ts';

// The gateway with real sockets: a real node:http server as the relay's own host, and a real
// HTTP/2 server standing in for the agent (it records the bytes of each data stream and answers
// only when a test says so, like a target that never reads or answers).

const RELAY_HOST = 'tunn.localhost';
const TUNNEL_HOST = 'app.tunn.localhost';

interface AgentStandIn {
  server: http2.Http2Server;
  streams: { bytes: () => string; write: (s: string) => void; stream: http2.ServerHttp2Stream }[];
}

describe('gateway', () => {
  const own: { method: string; url: string; body: string }[] = [];
  let ownHost: http.Server;
  let agent: AgentStandIn;
  let h2: http2.ClientHttp2Session;
  let front: net.Server;
  let port: number;

  before(async () => {
    ownHost = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('latin1');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        own.push({ method: req.method!, url: req.url!, body });
        res.writeHead(404, { 'content-type': 'text/plain' }).end('nope');
      });
    });
    agent = { server: http2.createServer(), streams: [] };
    agent.server.on('stream', (stream) => {
      let got = '';
      stream.setEncoding('latin1');
      stream.on('data', (c: string) => (got += c));
      stream.respond({ ':status': 200 });
      agent.streams.push({ bytes: () => got, write: (s) => stream.write(s), stream });
    });
    const agentPort = await listen(agent.server);
    h2 = http2.connect(`http://127.0.0.1:${agentPort}`);
    await new Promise((r) => h2.once('connect', r));
    const registry = new TunnelRegistry();
    const session: SessionRef = { id: 's1', agentId: 'a1', alive: true, openStream: (t, o) => openDataStream(h2, t, o), replaced() {}, refuse() {}, send() {} };
    registry.attach({ id: 't1', host: TUNNEL_HOST, name: 'app', domain: RELAY_HOST, accountId: 'acc', email: 'o@x.com', agentId: 'a1', options: { id: 't1', allow: [], public: true }, metrics: new RelayMetrics().forTunnel(TUNNEL_HOST) }, session);
    const gw = new Gateway({
      directory: registry,
      logger: silentLogger(),
      isRelayHost: (h) => h === RELAY_HOST,
      serveRelayHost: (conn) => ownHost.emit('connection', conn),
      maxHeadSize: 64 * 1024,
      idleTimeoutMs: 120_000,
      headTimeoutMs: 60_000,
    });
    front = net.createServer((s) => gw.accept(s, false, '127.0.0.1'));
    port = await listen(front);
  });
  after(() => {
    front?.close();
    h2?.destroy();
    agent?.server.close();
    ownHost?.close();
  });

  // Property: a connection handed to the relay's own host reaches it byte for byte: a pipelined
  // request after the first is served as a request (not lost), and a request inside a body is
  // never served as one.
  it('hands the relay host every pipelined request, in order, with its body', async () => {
    own.length = 0;
    const inner = `GET /v1/nope3-smuggled HTTP/1.1\r\nHost: ${RELAY_HOST}\r\n\r\n`;
    const bytes = `GET /v1/nope1 HTTP/1.1\r\nHost: ${RELAY_HOST}\r\n\r\nPOST /v1/nope2 HTTP/1.1\r\nHost: ${RELAY_HOST}\r\nContent-Type: text/plain\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`;
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    await until(() => count(got, 'HTTP/1.1 404') >= 2, 'two answers');
    s.destroy();
    assert.deepEqual(
      own.map((r) => [r.method, r.url, r.body]),
      [
        ['GET', '/v1/nope1', ''],
        ['POST', '/v1/nope2', inner],
      ],
    );
  });

  // Property: one connection pipelining requests to a target that never answers holds at most
  // MAX_PIPELINED requests in the relay (and on the agent link); each response that ends lets
  // one more through.
  it('forwards at most MAX_PIPELINED requests without a response, and more as responses end', async () => {
    const one = `GET / HTTP/1.1\r\nHost: ${TUNNEL_HOST}\r\n\r\n`;
    const s = net.connect(port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    let answers = '';
    s.on('data', (d: Buffer) => (answers += d.toString('latin1')));
    // 5,000 requests (~220 KB): far more than the limit, and than one read of the socket.
    const burst = one.repeat(1000);
    for (let i = 0; i < 5; i++) s.write(burst);
    await until(() => agent.streams.length === 1 && count(agent.streams[0]!.bytes(), 'GET / ') >= MAX_PIPELINED, 'the first requests at the agent');
    const stream = agent.streams[0]!;
    // Nothing more arrives while none is answered (a generous wait: this is the absence of progress).
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(count(stream.bytes(), 'GET / '), MAX_PIPELINED);
    // Five responses end: five more requests go through, and the client has its five answers.
    stream.write('HTTP/1.1 204 No Content\r\n\r\n'.repeat(5));
    await until(() => count(stream.bytes(), 'GET / ') >= MAX_PIPELINED + 5, 'five more requests');
    await until(() => count(answers, 'HTTP/1.1 204') === 5, 'five answers');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(count(stream.bytes(), 'GET / '), MAX_PIPELINED + 5);
    // Answering as requests arrive lets all 5,000 through, none lost.
    let written = 5;
    const answer = (): void => {
      const n = count(stream.bytes(), 'GET / ') - written;
      written += n;
      if (n > 0) stream.write('HTTP/1.1 204 No Content\r\n\r\n'.repeat(n));
    };
    stream.stream.on('data', () => setImmediate(answer));
    answer();
    await until(() => count(answers, 'HTTP/1.1 204') === 5_000, 'all 5,000 answers', 60_000);
    assert.equal(count(stream.bytes(), 'GET / '), 5_000);
    s.destroy();
  });
});
