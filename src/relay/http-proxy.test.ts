import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { after, before, beforeEach, describe, it } from 'node:test';
import { count, listen, until } from '../../test/support/gateway-kit.ts';
import type { GateDecision } from '../auth/gate.ts';
import { silentLogger } from '../lib/logger.ts';
import { openDataStream } from './agent-session.ts';
import { Gateway } from './gateway.ts';
import { RelayMetrics } from './metrics.ts';
import { TunnelRegistry } from './registry.ts';
import type { SessionRef } from './tunnel-directory.ts';

// The states of one public connection (http-proxy.ts, ProxyState) on real sockets: a request
// waiting for its decision, an upgrade declined or accepted, a connection the relay closes.
// A real HTTP/2 server stands in for the agent; each test answers its streams by hand.

const HOST = 'app.tunn.localhost';

const allow: GateDecision = { kind: 'allow', setHeaders: [], removeHeaders: [] };

describe('http proxy states', () => {
  const streams: { bytes: () => string; write: (s: string) => void }[] = [];
  let decide: (path: string) => GateDecision | Promise<GateDecision> = () => allow;
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
      stream.respond({ ':status': 200 });
      streams.push({ bytes: () => got, write: (s) => stream.write(s) });
    });
    h2 = http2.connect(`http://127.0.0.1:${await listen(agent)}`);
    await new Promise((r) => h2.once('connect', r));
    const directory = new TunnelRegistry();
    const session: SessionRef = { id: 's1', agentId: 'a1', alive: true, openStream: (t, o) => openDataStream(h2, t, o), replaced() {}, refuse() {}, send() {} };
    directory.attach({ id: 't1', host: HOST, name: 'app', domain: 'tunn.localhost', accountId: 'acc', email: 'o@x.com', agentId: 'a1', options: { id: 't1', allow: [], public: false }, metrics: new RelayMetrics().forTunnel(HOST) }, session, 0);
    ownHost = http.createServer((_req, res) => res.end('own host'));
    const gw = new Gateway({
      directory,
      logger: silentLogger(),
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
    await new Promise((r) => setTimeout(r, 300));
    gc();
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 16 * MiB, `the relay kept ${Math.round(grown / MiB)} MiB of the 64 MiB sent after its answer`);
    assert.equal(count(got, 'HTTP/1.1 '), 1, 'one answer, nothing after it');
    assert.equal(streams.length, 0, 'nothing reached the agent');
    s.destroy();
  });
});
