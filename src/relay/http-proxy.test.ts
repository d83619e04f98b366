import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { Writable } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import { after, before, beforeEach, describe, it } from 'node:test';
import { count, listen, until } from '../../test/support/gateway-kit.ts';
import type { GateDecision } from '../auth/gate.ts';
import { createLogger } from '../lib/logger.ts';
import { TARGET_ERROR_HEADER } from '../protocol/messages.ts';
import { openDataStream } from './agent-session.ts';
import { Gateway } from './gateway.ts';
import { RelayMetrics, type TunnelMetrics } from './metrics.ts';
import { TunnelRegistry } from './registry.ts';
import type { SessionRef } from './tunnel-directory.ts';

// The states of one public connection (http-proxy.ts, ProxyState) on real sockets: a request
// waiting for its decision, an upgrade declined or accepted, a connection the relay closes.
// A real HTTP/2 server stands in for the agent; each test answers its streams by hand.

const HOST = 'app.tunn.localhost';
/** A tunnel whose agent session cannot take a stream. */
const DOWN = 'down.tunn.localhost';

const allow: GateDecision = { kind: 'allow', setHeaders: [], removeHeaders: [] };

describe('http proxy states', () => {
  const streams: { bytes: () => string; write: (s: string) => void }[] = [];
  let decide: (path: string) => GateDecision | Promise<GateDecision> = () => allow;
  /** Set: the agent answers each stream with this target error (it could not reach the target). */
  let targetError: string | undefined;
  /** The relay's log lines, as JSON. */
  const logged: { msg: string; status?: number; method?: string; path?: string }[] = [];
  const metrics: Record<string, TunnelMetrics> = {};
  let gw: Gateway;
  let agent: http2.Http2Server;
  let h2: http2.ClientHttp2Session;
  let front: net.Server;
  let ownHost: http.Server;
  let port: number;

  before(async () => {
    agent = http2.createServer();
    agent.on('stream', (stream) => {
      let got = '';
      stream.setEncoding('latin1');
      stream.on('data', (c: string) => (got += c));
      if (targetError) stream.respond({ ':status': 502, [TARGET_ERROR_HEADER]: targetError });
      else stream.respond({ ':status': 200 });
      streams.push({ bytes: () => got, write: (s) => stream.write(s) });
    });
    h2 = http2.connect(`http://127.0.0.1:${await listen(agent)}`);
    await new Promise((r) => h2.once('connect', r));
    const directory = new TunnelRegistry();
    const session: SessionRef = { id: 's1', agentId: 'a1', alive: true, openStream: (t, o) => openDataStream(h2, t, o), replaced() {}, refuse() {}, send() {} };
    const relayMetrics = new RelayMetrics();
    for (const [host, s] of [
      [HOST, session],
      [DOWN, { ...session, id: 's2', alive: false }],
    ] as const) {
      metrics[host] = relayMetrics.forTunnel(host);
      directory.attach({ id: host, host, name: host.split('.')[0]!, domain: 'tunn.localhost', accountId: 'acc', email: 'o@x.com', agentId: 'a1', options: { id: host, allow: [], public: false }, metrics: metrics[host] }, s, 0);
    }
    ownHost = http.createServer((_req, res) => res.end('own host'));
    gw = new Gateway({
      directory,
      logger: createLogger({ json: true, level: 'debug', destination: new Writable({ write: (c: Buffer, _e, cb) => (logged.push(JSON.parse(c.toString())), cb()) }) }),
      access: { check: (req) => decide(req.path) },
      isRelayHost: (h) => h === 'tunn.localhost',
      serveRelayHost: (conn) => ownHost.emit('connection', conn),
      maxHeadSize: 64 * 1024,
      idleTimeoutMs: 120_000,
      headTimeoutMs: 60_000,
    });
    front = net.createServer((s) => gw.accept(s, false, '127.0.0.1'));
    port = await listen(front);
  });
  beforeEach(() => {
    streams.length = 0;
    decide = () => allow;
    targetError = undefined;
    logged.length = 0;
  });
  after(() => {
    front?.close();
    h2?.destroy();
    agent?.close();
  });

  async function client(): Promise<{ s: net.Socket; got: () => string; closed: () => boolean }> {
    const s = net.connect(port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    let got = '';
    let closed = false;
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('close', () => (closed = true));
    return { s, got: () => got, closed: () => closed };
  }

  const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\n${extra}\r\n`;

  it('deciding: holds the requests after one that waits for its decision, then forwards them in order', async () => {
    let release!: () => void;
    decide = (path) => (path === '/slow' ? new Promise((r) => (release = () => r(allow))) : allow);
    const c = await client();
    c.s.write(get('/slow') + get('/after'));
    await until(() => release !== undefined, 'the decision to be asked');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(streams.length, 0, 'nothing reaches the agent before the decision');
    release();
    await until(() => streams.length === 1 && count(streams[0]!.bytes(), 'GET ') === 2, 'both requests at the agent');
    assert.ok(streams[0]!.bytes().indexOf('GET /slow') < streams[0]!.bytes().indexOf('GET /after'));
    c.s.destroy();
  });

  // Guards: bytes after an upgrade request are not sent on as raw bytes unless the target
  // agreed (101); a declined upgrade leaves the connection HTTP, each request decided again.
  it('upgrading → http: a declined upgrade keeps parsing what follows as requests', async () => {
    const denied: string[] = [];
    decide = (path) => {
      if (path === '/secret') {
        denied.push(path);
        return { kind: 'respond', status: 403, headers: [], body: 'no\n' };
      }
      return allow;
    };
    const c = await client();
    c.s.write(get('/ws', 'Connection: Upgrade\r\nUpgrade: websocket\r\n') + get('/secret'));
    await until(() => streams.length === 1 && streams[0]!.bytes().includes('GET /ws'), 'the upgrade request');
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!streams[0]!.bytes().includes('/secret'), 'the request after the upgrade waits for its answer');
    streams[0]!.write('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
    await until(() => c.got().includes('HTTP/1.1 403'), 'the next request decided (and refused) as HTTP');
    assert.deepEqual(denied, ['/secret']);
    assert.ok(!streams[0]!.bytes().includes('/secret'), 'the refused request never reached the agent');
    c.s.destroy();
  });

  it('upgrading → raw: after 101 the bytes pass both ways unparsed', async () => {
    const c = await client();
    c.s.write(get('/ws', 'Connection: Upgrade\r\nUpgrade: websocket\r\n') + 'not HTTP at all\r\n');
    await until(() => streams.length === 1, 'the upgrade request');
    streams[0]!.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframes from the target');
    await until(() => streams[0]!.bytes().endsWith('not HTTP at all\r\n'), 'the bytes after the upgrade, as sent');
    c.s.write('GET /not-a-request HTTP/1.1\r\n\r\n');
    await until(() => streams[0]!.bytes().endsWith('GET /not-a-request HTTP/1.1\r\n\r\n'), 'raw bytes');
    await until(() => c.got().endsWith('frames from the target'), 'the target’s bytes');
    c.s.destroy();
  });

  it('closing: a refused request with a body ends the connection; nothing after it is handled', async () => {
    decide = () => ({ kind: 'respond', status: 403, headers: [], body: 'no\n' });
    const c = await client();
    c.s.write(`POST /x HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\n\r\nhello` + get('/y'));
    await until(() => c.closed(), 'the connection to close');
    assert.equal(count(c.got(), 'HTTP/1.1 403'), 1);
    assert.match(c.got(), /Connection: close/);
    assert.equal(streams.length, 0);
  });

  const answers = () => logged.filter((l) => l.msg === 'answered by the relay');

  // The relay's two kinds of answer, one writer (http-proxy.ts #write): an answer to a request
  // it decided waits for the responses before it and keeps the connection when it may; one in
  // place of the tunnel's response goes out at once, closes, and stops the stream.
  it('offline: the answer to a request for a tunnel with no agent is counted on that tunnel and keeps the connection', async () => {
    const c = await client();
    const before = metrics[DOWN]!.responses[4]!;
    c.s.write(`GET /a HTTP/1.1\r\nHost: ${DOWN}\r\n\r\nGET /b HTTP/1.1\r\nHost: ${DOWN}\r\n\r\n`);
    await until(() => count(c.got(), 'HTTP/1.1 503') === 2, 'both requests answered on the one connection');
    assert.ok(!c.got().includes('Connection: close'), 'the connection is kept');
    assert.equal(metrics[DOWN]!.responses[4]! - before, 2, 'each 503 counted once on the tunnel');
    assert.deepEqual(
      answers().map((l) => [l.status, l.method, l.path]),
      [
        [503, 'GET', '/a'],
        [503, 'GET', '/b'],
      ],
    );
    c.s.destroy();
  });

  // Guards: nothing may follow an answer given in place of the tunnel's response (the client
  // would take it for the answer to the next request), and an answer never written is not logged.
  it('target down: one 502 in place of the response closes the connection; the answer waiting behind it is dropped, not logged', async () => {
    targetError = 'ECONNREFUSED';
    decide = (path) => (path === '/two' ? { kind: 'respond', status: 403, headers: [], body: 'no\n' } : allow);
    const before = metrics[HOST]!.responses[4]!;
    const c = await client();
    c.s.write(get('/one') + get('/two'));
    await until(() => c.closed(), 'the connection to close');
    assert.equal(count(c.got(), 'HTTP/1.1 '), 1, 'one answer');
    assert.match(c.got(), /^HTTP\/1\.1 502 [^]*Connection: close\r\n[^]*\(ECONNREFUSED\)/);
    assert.deepEqual(
      answers().map((l) => [l.status, l.method, l.path]),
      [[502, 'GET', '/one']],
      'logged once, naming the request it answers',
    );
    assert.equal(metrics[HOST]!.responses[4]! - before, 1, 'counted once');
  });

  // Guards: a head that times out behind a request waiting for its decision closes the
  // connection; that request must not reach the target after the client was told 408.
  it('closing: a request whose decision comes after a timed-out head is not forwarded', async () => {
    let release!: () => void;
    decide = (path) => (path === '/slow' ? new Promise((r) => (release = () => r(allow))) : allow);
    (gw.opts as { headTimeoutMs: number }).headTimeoutMs = 300;
    try {
      const c = await client();
      // A 404 first: the connection is past the relay's own host, with no stream yet.
      c.s.write(`GET / HTTP/1.1\r\nHost: nowhere.tunn.localhost\r\n\r\n`);
      await until(() => c.got().includes('HTTP/1.1 404'), 'the 404');
      c.s.write(get('/slow') + `GET /next HTTP/1.1\r\nHost: ${HOST}\r\n`);
      await until(() => c.got().includes('HTTP/1.1 408'), 'the timed-out head answered');
      release();
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(streams.length, 0, 'nothing reached the agent');
      assert.deepEqual(answers().map((l) => l.status), [404, 408]);
      c.s.destroy();
    } finally {
      (gw.opts as { headTimeoutMs: number }).headTimeoutMs = 60_000;
    }
  });

  // Guards: responses match requests in order; an answer waiting its turn is neither lost nor
  // overtaken by a later one (the client would take a 408 for the refused request's answer).
  it('answers waiting behind a response go out after it, in request order', async () => {
    decide = (path) => (path === '/two' ? { kind: 'respond', status: 403, headers: [], body: 'no\n' } : allow);
    (gw.opts as { headTimeoutMs: number }).headTimeoutMs = 300;
    try {
      const c = await client();
      c.s.write(get('/one') + get('/two') + `GET /three HTTP/1.1\r\nHost: ${HOST}\r\n`);
      // Past the head timeout (if its timer ran late, the 408 still comes last).
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(c.got(), '', 'both answers wait for the response to /one');
      streams[0]!.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      await until(() => c.closed(), 'the connection to close');
      assert.deepEqual(c.got().match(/HTTP\/1\.1 \d+/g), ['HTTP/1.1 200', 'HTTP/1.1 403', 'HTTP/1.1 408']);
    } finally {
      (gw.opts as { headTimeoutMs: number }).headTimeoutMs = 60_000;
    }
  });

  // Guards memory: a visitor refused at the edge (no credential) keeps sending the body of its
  // upload after the relay's closing answer; the relay must not keep those bytes.
  it('closing: what the client still sends after the answer is read and dropped, not kept', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    decide = () => ({ kind: 'respond', status: 401, headers: [], body: 'log in\n' });
    // Half-open: the client goes on sending after the relay's FIN, as an attacker's would.
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise((r) => s.once('connect', r));
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    const MiB = 1024 * 1024;
    s.write(`POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${1024 * MiB}\r\n\r\n`);
    await until(() => got.includes('HTTP/1.1 401'), 'the refusal');
    gc();
    const before = process.memoryUsage().arrayBuffers;
    const piece = Buffer.alloc(MiB, 0x61);
    for (let i = 0; i < 64; i++) if (!s.write(piece)) await new Promise((r) => s.once('drain', r));
    await new Promise<void>((r) => s.write('', () => r()));
    // Buffers are freed a moment after a collection (off the main thread): poll, with a ceiling.
    let grown = Infinity;
    for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
      gc();
      grown = process.memoryUsage().arrayBuffers - before;
      if (grown < 16 * MiB) break;
    }
    assert.ok(grown < 16 * MiB, `the relay kept ${Math.round(grown / MiB)} MiB of the 64 MiB sent after its answer`);
    assert.equal(count(got, 'HTTP/1.1 '), 1, 'one answer, nothing after it');
    assert.equal(streams.length, 0, 'nothing reached the agent');
    s.destroy();
  });
});
