import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { silentLogger } from '../lib/logger.ts';
import { Edge, routeFor, type EdgeAnswers, type EdgeHello, type EdgeRoute } from './edge.ts';

// The edge's routing decisions as a pure function of (listener, ALPN, SNI) and what the relay
// answers about a name, and the edge itself on real sockets.

const none: EdgeAnswers = { relayAnswersAlpnChallenge: () => false };
const tls = (alpn: string[], serverName?: string): EdgeHello => ({ listener: 'https', alpn, serverName });

describe('edge routing table', () => {
  it('sends the plain-HTTP listener to the gateway whatever it carries', () => {
    assert.equal(routeFor({ listener: 'http', alpn: ['tunn/1'], serverName: 'x.test' }, none), 'plain-http');
  });

  it('routes ALPN tunn/1 to the agent link, before any name-based route', () => {
    const all: EdgeAnswers = { relayAnswersAlpnChallenge: () => true, agentAnswersAlpnChallenge: () => true, tlsEndsAtAgent: () => true };
    assert.equal(routeFor(tls(['h2', 'tunn/1'], 'relay.test'), all), 'agent-link');
  });

  it('routes tunn-connect/1 to the connect route', () => {
    assert.equal(routeFor(tls(['tunn-connect/1'], 'db.relay.test'), none), 'connect');
  });

  // Guards: a TLS-ALPN-01 answer is given only for a name with a pending challenge; any other
  // acme-tls/1 hello is an ordinary TLS connection (the relay's certificate, no challenge cert).
  it('answers acme-tls/1 only for a pending challenge: the relay’s, else an agent’s, else terminates', () => {
    const relayPending: EdgeAnswers = { relayAnswersAlpnChallenge: (n) => n === 'a.test', agentAnswersAlpnChallenge: (n) => n === 'b.test' };
    assert.equal(routeFor(tls(['acme-tls/1'], 'a.test'), relayPending), 'acme-tls-alpn');
    assert.equal(routeFor(tls(['acme-tls/1'], 'b.test'), relayPending), 'acme-tls-alpn-to-agent');
    assert.equal(routeFor(tls(['acme-tls/1'], 'c.test'), relayPending), 'terminate-tls');
    assert.equal(routeFor(tls(['acme-tls/1']), relayPending), 'terminate-tls', 'no SNI: no challenge');
  });

  // In a cluster a challenge may have been presented by another relay moments ago: an acme-tls/1
  // hello no agent claims goes to the relay's answer, which reads the database and closes the
  // connection when no challenge is pending (it never gets the relay's ordinary certificate).
  it('in a cluster, routes acme-tls/1 nobody here claims to the relay’s answer (read from the database); agents keep theirs', () => {
    const cluster: EdgeAnswers = { relayAnswersAlpnChallenge: (n) => n === 'a.test', agentAnswersAlpnChallenge: (n) => n === 'b.test', relayMayAnswerAlpnChallenge: () => true };
    assert.equal(routeFor(tls(['acme-tls/1'], 'a.test'), cluster), 'acme-tls-alpn');
    assert.equal(routeFor(tls(['acme-tls/1'], 'b.test'), cluster), 'acme-tls-alpn-to-agent');
    assert.equal(routeFor(tls(['acme-tls/1'], 'c.test'), cluster), 'acme-tls-alpn');
    assert.equal(routeFor(tls(['acme-tls/1']), cluster), 'terminate-tls', 'no SNI: no challenge');
    assert.equal(routeFor(tls(['http/1.1'], 'c.test'), cluster), 'terminate-tls', 'ordinary TLS is unaffected');
  });

  it('sends a name whose TLS ends at an agent there as raw TLS; other names terminate here', () => {
    const a: EdgeAnswers = { ...none, tlsEndsAtAgent: (n) => n === 'e2e.relay.test' };
    assert.equal(routeFor(tls(['h2', 'http/1.1'], 'e2e.relay.test'), a), 'tls-to-agent');
    assert.equal(routeFor(tls(['http/1.1'], 'app.relay.test'), a), 'terminate-tls');
    assert.equal(routeFor(tls([]), a), 'terminate-tls', 'no SNI');
  });
});

/** A minimal ClientHello (TLS 1.2 record) with SNI and ALPN, enough for client-hello.ts. */
function clientHello(serverName: string, alpn: string[]): Buffer {
  const u16 = (n: number) => Buffer.from([n >> 8, n & 255]);
  const sniName = Buffer.from(serverName, 'latin1');
  const sniList = Buffer.concat([Buffer.from([0]), u16(sniName.length), sniName]);
  const sni = Buffer.concat([u16(0), u16(sniList.length + 2), u16(sniList.length), sniList]);
  const protos = Buffer.concat(alpn.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])));
  const alpnExt = Buffer.concat([u16(16), u16(protos.length + 2), u16(protos.length), protos]);
  const exts = Buffer.concat([sni, alpnExt]);
  const body = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32), Buffer.from([0]), u16(2), Buffer.from([0x13, 0x01]), Buffer.from([1, 0]), u16(exts.length), exts]);
  const hs = Buffer.concat([Buffer.from([1, 0]), u16(body.length), body]);
  return Buffer.concat([Buffer.from([22, 3, 1]), u16(hs.length), hs]);
}

describe('Edge on real sockets', () => {
  async function through(bytes: Buffer, handlers: Partial<Record<EdgeRoute, true>>): Promise<{ route?: EdgeRoute; hello?: EdgeHello; replayed?: Buffer; reply: string }> {
    const seen: { route?: EdgeRoute; hello?: EdgeHello; replayed?: Buffer } = {};
    const handler = (route: EdgeRoute) => (s: net.Socket, h: EdgeHello) => {
      Object.assign(seen, { route, hello: h });
      s.once('data', (d: Buffer) => {
        seen.replayed = d;
        s.end('routed');
      });
      s.resume();
    };
    const all = Object.fromEntries((Object.keys(handlers) as EdgeRoute[]).map((r) => [r, handler(r)]));
    const edge = new Edge(all, none, silentLogger());
    const server = net.createServer((s) => edge.accept('https', s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
      c.write(bytes);
      let reply = '';
      c.setEncoding('latin1').on('data', (d: string) => (reply += d));
      await new Promise((r) => c.on('close', r));
      return { ...seen, reply };
    } finally {
      server.close();
    }
  }

  it('reads the ClientHello, routes it, and hands the socket over with the bytes put back', async () => {
    const hello = clientHello('relay.test', ['tunn/1']);
    const r = await through(hello, { 'agent-link': true, 'terminate-tls': true });
    assert.equal(r.route, 'agent-link');
    assert.deepEqual(r.hello, { listener: 'https', serverName: 'relay.test', alpn: ['tunn/1'] });
    assert.deepEqual(r.replayed, hello, 'the handler reads the whole ClientHello again');
    assert.equal(r.reply, 'routed');
  });

  it('tells a plain-HTTP client on the TLS port what to do', async () => {
    const r = await through(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), { 'terminate-tls': true });
    assert.equal(r.route, undefined);
    assert.match(r.reply, /^HTTP\/1\.1 400 Bad Request[\s\S]*This port speaks HTTPS: use an https:\/\/ URL/);
  });

  it('drops a socket whose route has no handler (a route added to the table before its handler)', async () => {
    const r = await through(clientHello('db.relay.test', ['tunn-connect/1']), { 'terminate-tls': true });
    assert.equal(r.route, undefined);
    assert.equal(r.reply, '');
  });
});
