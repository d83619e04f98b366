import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { localhostAwareLookup } from '../../src/agent/target.ts';
import { createToken, request, startAgent, startRelay, until, type AgentHandle, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

/** Sends raw bytes to the relay's plain HTTP port and collects everything until close. */
async function raw(port: number, data: string | Buffer, opts: { waitMs?: number } = {}): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(data);
  await Promise.race([once(s, 'close'), new Promise((r) => setTimeout(r, opts.waitMs ?? 5000))]);
  s.destroy();
  return Buffer.concat(chunks).toString('latin1');
}

describe('HTTP through the tunnel', () => {
  let relay: RelayHandle;
  let origin: Origin;
  let agent: AgentHandle;
  let rewriting: AgentHandle;

  before(async () => {
    origin = await startOrigin();
    relay = await startRelay();
    const token = await createToken(relay, 'alice@example.com');
    agent = await startAgent(relay, token, origin.port, ['-n', 'web', '--public']);
    rewriting = await startAgent(relay, token, `127.0.0.1:${origin.port}`, ['-n', 'rewrite', '--public', '--host-header', 'rewrite', '--quiet']);
  });
  after(async () => {
    await agent?.stop();
    await rewriting?.stop();
    await relay?.stop();
    await origin?.close();
  });

  it('prints URLs on the relay domain with the requested name', () => {
    assert.equal(agent.host, 'web.tunn.localhost');
    assert.equal(agent.url, `https://web.tunn.localhost:${relay.httpsPort}`);
    assert.equal(agent.httpUrl, `http://web.tunn.localhost:${relay.httpPort}`);
  });

  it('forwards every method with its body, over HTTPS and plain HTTP', async () => {
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PROPFIND']) {
      for (const [url, ca] of [[agent.url, relay.ca], [agent.httpUrl, undefined]] as const) {
        const body = method === 'GET' ? undefined : `body of ${method}`;
        // Node's client frames bodies of DELETE/OPTIONS only with an explicit Content-Length.
        const headers = body ? { 'Content-Length': String(Buffer.byteLength(body)) } : undefined;
        const r = await request(`${url}/echo?m=${method}`, { method, body, ca, headers });
        assert.equal(r.status, 200, `${method} ${url}`);
        const e = JSON.parse(r.text);
        assert.equal(e.method, method);
        assert.equal(e.url, `/echo?m=${method}`);
        assert.equal(e.body, body ?? '');
      }
    }
  });

  it('answers HEAD with headers and no body', async () => {
    const r = await request(`${agent.httpUrl}/echo`, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-origin'], 'yes');
    assert.equal(r.body.length, 0);
  });

  it('keeps the Host header, sets X-Forwarded-* and replaces inbound copies, drops hop-by-hop headers', async () => {
    const r = await request(`${agent.url}/echo`, {
      ca: relay.ca,
      headers: { 'X-Forwarded-For': '6.6.6.6', 'X-Forwarded-Host': 'evil.example', Forwarded: 'for=6.6.6.6', Connection: 'keep-alive, X-Secret', 'X-Secret': 'hop', 'Keep-Alive': 'timeout=5', 'Proxy-Authorization': 'Basic eA==' },
    });
    const e = JSON.parse(r.text);
    assert.equal(e.headers.host, `web.tunn.localhost:${relay.httpsPort}`);
    assert.equal(e.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(e.headers['x-forwarded-proto'], 'https');
    assert.equal(e.headers['x-forwarded-host'], `web.tunn.localhost:${relay.httpsPort}`);
    for (const h of ['forwarded', 'x-secret', 'keep-alive', 'proxy-authorization']) assert.equal(e.headers[h], undefined, h);
    const plain = JSON.parse((await request(`${agent.httpUrl}/echo`)).text);
    assert.equal(plain.headers['x-forwarded-proto'], 'http');
  });

  it('rewrites Host to the target with --host-header rewrite', async () => {
    const e = JSON.parse((await request(`http://rewrite.tunn.localhost:${relay.httpPort}/echo`)).text);
    assert.equal(e.headers.host, `127.0.0.1:${origin.port}`);
    assert.equal(e.headers['x-forwarded-host'], `rewrite.tunn.localhost:${relay.httpPort}`);
  });

  it('streams chunked responses as they are written, and chunked uploads', async () => {
    const r = await request(`${agent.httpUrl}/chunked`);
    assert.equal(r.text, 'one,two,three');
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    const up = await new Promise<string>((resolve, reject) => {
      const req = http.request(`${agent.httpUrl}/upload`, { method: 'POST', lookup: localhostAwareLookup as never, agent: false }, (res) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => resolve(s));
      });
      req.on('error', reject);
      req.write('a'.repeat(1000));
      setTimeout(() => req.end('b'.repeat(500)), 50);
    });
    assert.deepEqual(JSON.parse(up), { received: 1500 });
  });

  it('keeps connections alive across requests, pipelined too', async () => {
    const ka = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ports = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const r = await request(`${agent.httpUrl}/echo?i=${i}`, { agent: ka });
      assert.equal(r.status, 200);
    }
    ka.on('free', (s: net.Socket) => ports.add(s.localPort!));
    await request(`${agent.httpUrl}/echo`, { agent: ka });
    ka.destroy();
    assert.equal(ports.size, 1);
    const host = `web.tunn.localhost:${relay.httpPort}`;
    const out = await raw(relay.httpPort, `GET /echo?a HTTP/1.1\r\nHost: ${host}\r\n\r\nGET /echo?b HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assert.equal(out.match(/HTTP\/1\.1 200 OK/g)?.length, 2);
    assert.ok(out.indexOf('/echo?a') < out.indexOf('/echo?b'));
  });

  it('handles Expect: 100-continue', async () => {
    const status = await new Promise<{ cont: boolean; body: string }>((resolve, reject) => {
      let cont = false;
      const req = http.request(`${agent.httpUrl}/echo`, { method: 'POST', headers: { Expect: '100-continue', 'Content-Length': '5' }, lookup: localhostAwareLookup as never, agent: false }, (res) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => resolve({ cont, body: s }));
      });
      req.on('continue', () => {
        cont = true;
        req.end('hello');
      });
      req.on('error', reject);
    });
    assert.equal(status.cont, true);
    assert.equal(JSON.parse(status.body).body, 'hello');
  });

  it('delivers server-sent events as they are sent', async () => {
    const events = await new Promise<string[]>((resolve, reject) => {
      const got: string[] = [];
      const req = http.get(`${agent.httpUrl}/sse`, { lookup: localhostAwareLookup as never, agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          for (const m of d.matchAll(/data: (\S+)/g)) got.push(m[1]!);
          if (got.length === 3) {
            req.destroy();
            resolve(got);
          }
        });
      });
      req.on('error', (e) => (got.length === 3 ? undefined : reject(e)));
    });
    assert.deepEqual(events, ['event-0', 'event-1', 'event-2']);
  });

  it('carries WebSockets both ways, over HTTPS and plain HTTP', async () => {
    for (const [url, ca] of [[agent.url.replace('https:', 'wss:'), relay.ca], [agent.httpUrl.replace('http:', 'ws:'), undefined]] as const) {
      const ws = new WebSocket(`${url}/ws`, { lookup: localhostAwareLookup as never, ca });
      const msgs: string[] = [];
      ws.on('message', (m) => msgs.push(m.toString()));
      await once(ws, 'open');
      await until(() => msgs.length === 1, 5000, 'greeting');
      assert.equal(msgs[0], 'hello 127.0.0.1');
      ws.send('ping 1');
      ws.send(Buffer.alloc(100_000, 7));
      await until(() => msgs.length === 3, 5000, 'echoes');
      assert.equal(msgs[1], 'ping 1');
      assert.equal(msgs[2]!.length, 100_000);
      ws.close();
      await once(ws, 'close');
    }
  });

  it('aborts the request to the target when the visitor disconnects', async () => {
    const before = origin.aborted.length;
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${agent.httpUrl}/hang`, { lookup: localhostAwareLookup as never, agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
      setTimeout(() => reject(new Error('no first byte')), 5000);
    });
    await until(() => origin.aborted.length > before, 5000, 'origin to see the abort');
  });

  it('answers an unknown host with a 404 that names no other tunnel', async () => {
    const r = await request(`http://nope.tunn.localhost:${relay.httpPort}/`);
    assert.equal(r.status, 404);
    assert.match(r.text, /No tunnel here/);
    assert.doesNotMatch(r.text, /web|rewrite/);
  });

  it("shows the relay's pages with a request id that is in the relay's log line, under the auth pages' headers", async () => {
    const r = await request(`http://nope.tunn.localhost:${relay.httpPort}/x?secret=1`);
    assert.equal(r.status, 404);
    const id = String(r.headers['tunn-request-id']);
    assert.match(id, /^[A-Za-z0-9_-]{12}$/);
    assert.match(r.text, new RegExp(`request id <code>${id}</code>`));
    const line = await relay.proc.waitFor((l) => l.reqId === id);
    assert.equal(line.status, 404);
    assert.equal(line.host, `nope.tunn.localhost:${relay.httpPort}`);
    // The log line names the path without its query string (which may carry a secret).
    assert.equal(line.path, '/x');
    // Security property: no script in a relay page, no content sniffing, no framing.
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.match(String(r.headers['content-security-policy']), /default-src 'none'/);
    const again = await request(`http://nope.tunn.localhost:${relay.httpPort}/`);
    assert.notEqual(again.headers['tunn-request-id'], id, 'one id per request');
  });

  it('answers malformed requests with 400 and oversized heads with 431, and keeps serving', async () => {
    const bad = await raw(relay.httpPort, 'GARBAGE\r\n\r\n');
    assert.match(bad, /^HTTP\/1\.1 400 /);
    const smuggle = await raw(relay.httpPort, `POST / HTTP/1.1\r\nHost: web.tunn.localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
    assert.match(smuggle, /^HTTP\/1\.1 400 /);
    const bareLf = await raw(relay.httpPort, 'GET / HTTP/1.1\nHost: web.tunn.localhost\n\n');
    assert.match(bareLf, /^HTTP\/1\.1 400 /);
    const noHost = await raw(relay.httpPort, 'GET / HTTP/1.1\r\n\r\n');
    assert.match(noHost, /^HTTP\/1\.1 400 /);
    const big = await raw(relay.httpPort, `GET / HTTP/1.1\r\nHost: web.tunn.localhost\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\n\r\n`);
    assert.match(big, /^HTTP\/1\.1 431 /);
    assert.equal((await request(`${agent.httpUrl}/echo`)).status, 200);
  });

  it('answers 502 with the kind of failure, not the target, when the local service is down', async () => {
    const token = await createToken(relay, 'bob@example.com');
    const free = net.createServer().listen(0, '127.0.0.1');
    await once(free, 'listening');
    const port = (free.address() as net.AddressInfo).port;
    free.close();
    const down = await startAgent(relay, token, port, ['-n', 'down', '--public', '--quiet']);
    try {
      const r = await request(`${down.httpUrl}/`);
      assert.equal(r.status, 502);
      // The target's address stays in the agent's log (test/e2e/edge-hygiene.test.ts).
      assert.doesNotMatch(r.text, new RegExp(`localhost:${port}`));
      assert.match(r.text, /not answering \(ECONNREFUSED\)/);
    } finally {
      await down.stop();
    }
  });

  it('prints a request log line per request', async () => {
    await request(`${agent.httpUrl}/status?code=418`);
    const line = await agent.proc.waitFor((l) => l.event === 'request' && l.path === '/status?code=418');
    assert.equal(line.method, 'GET');
    assert.equal(line.status, 418);
    assert.equal(typeof line.durationMs, 'number');
    assert.equal(typeof line.bytes, 'number');
  });

  it('serves /metrics on the relay host to loopback clients', async () => {
    const r = await request(`http://tunn.localhost:${relay.httpPort}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.text, /tunn_tunnels \d/);
    assert.match(r.text, /tunn_requests_total\{tunnel="web\.tunn\.localhost",code="2xx"\} \d+/);
    assert.match(r.text, /tunn_bytes_total\{tunnel="web\.tunn\.localhost",direction="out"\} \d+/);
  });
});
