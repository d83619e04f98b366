import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createToken, request, startAgent, startCli, startRelay, until, type AgentHandle, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

// Header and request hygiene at the gateway (issue 9 findings 2–6, trailers, the 502 page):
// the real relay and agents, a real node:http origin that records exactly what it received,
// and a raw-socket origin that answers 101 to show the relay never goes raw for h2c.

interface Seen {
  url: string;
  rawHeaders: string[];
  rawTrailers: string[];
}

/** A node:http origin answering each request with what it received (raw header names and trailers). */
async function recordingOrigin(): Promise<{ port: number; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const s = { url: req.url ?? '', rawHeaders: req.rawHeaders, rawTrailers: req.rawTrailers };
      seen.push(s);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(s));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, seen, close: () => new Promise((r) => server.close(() => r())) };
}

/**
 * A raw-socket origin for upgrades. `/always-101` answers 101 whatever the request says (an
 * h2c server that does not wait to be asked); other paths answer 101 only when Upgrade was
 * received, else 200 with the head. Every byte it receives is recorded.
 */
async function upgradeOrigin(): Promise<{ port: number; received: () => string; close(): Promise<void> }> {
  let all = '';
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => {});
    let buf = '';
    let answered = false;
    s.on('data', (c: Buffer) => {
      all += c.toString('latin1');
      if (answered) return;
      buf += c.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      answered = true;
      const head = buf.slice(0, end);
      const upgrade = /^upgrade:\s*(.+)$/im.exec(head)?.[1];
      if (head.startsWith('GET /always-101 ') || upgrade) {
        s.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${upgrade ?? 'h2c'}\r\n\r\n`);
      } else {
        s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(head, 'latin1')}\r\nConnection: close\r\n\r\n${head}`);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    received: () => all,
    close: () => {
      for (const s of socks) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/**
 * A raw-socket origin that records the exact bytes of each connection and answers 200 (and closes) once a
 * chunked body's last chunk and trailer section are in (or at once for a request without a body).
 * `POST /continue-late` is answered 100 Continue at once and 200 a second later (kept alive).
 */
async function chunkOrigin(): Promise<{ port: number; connections: string[]; close(): Promise<void> }> {
  const connections: string[] = [];
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => {});
    const at = connections.push('') - 1;
    s.on('data', (c: Buffer) => {
      connections[at] += c.toString('latin1');
      const got = connections[at]!;
      if (got.startsWith('POST /continue-late ')) {
        if (!got.endsWith('\r\n\r\n') || got.indexOf('\r\n\r\n') !== got.length - 4) return;
        s.write('HTTP/1.1 100 Continue\r\n\r\n');
        setTimeout(() => s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal'), 1000);
        return;
      }
      const body = got.slice(got.indexOf('\r\n\r\n') + 4);
      const chunked = /transfer-encoding/i.test(got.slice(0, got.indexOf('\r\n\r\n')));
      if (got.includes('\r\n\r\n') && (chunked ? /(?:^|\r\n)0\r\n(?:[^\r\n]+\r\n)*\r\n$/.test(body) : true)) {
        s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    close: () => {
      for (const s of socks) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** Opens a raw connection to the relay's plain HTTP port; collects what comes back. */
async function rawConn(port: number): Promise<{ sock: net.Socket; text: () => string; closed: Promise<unknown> }> {
  const sock = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  sock.on('error', () => {});
  const closed = once(sock, 'close');
  await once(sock, 'connect');
  return { sock, text: () => Buffer.concat(chunks).toString('latin1'), closed };
}

/** Sends one request (with Connection: close) and returns the whole answer. */
async function rawRequest(port: number, data: string): Promise<string> {
  const c = await rawConn(port);
  c.sock.write(data);
  await Promise.race([c.closed, new Promise((r) => setTimeout(r, 10_000))]);
  c.sock.destroy();
  return c.text();
}

/** Values of a header as received (name matched case-insensitively). */
function values(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
}

/** Values of every header a CGI-style server reads as `name` (case and `_`/`-` folded). */
function spelledAs(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase().replaceAll('_', '-') === name) out.push(raw[i + 1]!);
  return out;
}

describe('edge hygiene: what reaches the origin', () => {
  let relay: RelayHandle;
  let origin: Awaited<ReturnType<typeof recordingOrigin>>;
  let upOrigin: Awaited<ReturnType<typeof upgradeOrigin>>;
  let rawOrigin: Awaited<ReturnType<typeof chunkOrigin>>;
  let wsOrigin: Origin;
  let token: string;
  const agents: AgentHandle[] = [];
  let downPort: number;
  let down: AgentHandle;
  const host = (name: string): string => `${name}.tunn.localhost:${relay.httpPort}`;

  before(async () => {
    origin = await recordingOrigin();
    upOrigin = await upgradeOrigin();
    rawOrigin = await chunkOrigin();
    wsOrigin = await startOrigin();
    relay = await startRelay();
    token = await createToken(relay, 'alice@example.com');
    // A port nothing listens on: the target of the `down` tunnel.
    const probe = net.createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    downPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    agents.push(
      ...(await Promise.all([
        startAgent(relay, token, origin.port, ['-n', 'pub', '--public', '--quiet']),
        startAgent(relay, token, origin.port, ['-n', 'priv', '-a', 'alice@example.com', '--quiet']),
        startAgent(relay, token, origin.port, ['-n', 'secret', '-a', 'nobody@example.com', '--quiet']),
        startAgent(relay, token, upOrigin.port, ['-n', 'up', '--public', '--quiet']),
        startAgent(relay, token, upOrigin.port, ['-n', 'optin', '--public', '--quiet', '--allow-upgrade', 'foo,bar']),
        startAgent(relay, token, rawOrigin.port, ['-n', 'raw', '--public', '--quiet']),
        startAgent(relay, token, wsOrigin.port, ['-n', 'wsapp', '--public', '--quiet']),
      ])),
    );
    down = await startAgent(relay, token, downPort, ['-n', 'down', '--public', '--quiet']);
  });
  after(async () => {
    await Promise.all([...agents, down].filter(Boolean).map((a) => a.stop()));
    await relay?.stop();
    await origin?.close();
    await upOrigin?.close();
    await rawOrigin?.close();
    await wsOrigin?.close();
  });

  it('rewrites an absolute target naming the Host to origin-form, and refuses one naming another host (security: finding 2, RFC 9112 §3.2.2)', async () => {
    const ok = await rawRequest(relay.httpPort, `GET http://${host('pub')}/abs?x=1 HTTP/1.1\r\nHost: ${host('pub')}\r\nConnection: close\r\n\r\n`);
    assert.match(ok, /^HTTP\/1\.1 200 /);
    assert.equal(origin.seen.at(-1)!.url, '/abs?x=1', 'the origin gets origin-form');
    const before = origin.seen.length;
    const refused = await rawRequest(relay.httpPort, `GET http://${host('secret')}/private HTTP/1.1\r\nHost: ${host('pub')}\r\nConnection: close\r\n\r\n`);
    assert.match(refused, /^HTTP\/1\.1 400 /);
    assert.match(refused, /names another host than the Host header/);
    assert.equal(origin.seen.length, before, 'nothing reached an origin');
    assert.ok(!origin.seen.some((s) => s.url.includes('private') || s.url.includes('secret')));
  });

  // Guards: a path cannot name a host. A Node app resolving new URL(req.url, base) would read
  // `//secret.<zone>/x` as a request for the host secret.<zone>.
  it('answers CONNECT with 405 on the relay\'s own host and on a tunnel: tunn is not a forward proxy (it used to leave the relay host\'s unanswered)', async () => {
    for (const h of [`${relay.domain}:${relay.httpPort}`, host('pub')]) {
      const res = await rawRequest(relay.httpPort, `CONNECT secret.internal:22 HTTP/1.1\r\nHost: ${h}\r\n\r\n`);
      assert.match(res, /^HTTP\/1\.1 405 /, h);
    }
  });

  it('refuses a path starting with // or /\\ with a 400 that says what to send (security: no host in the path)', async () => {
    const before = origin.seen.length;
    for (const path of [`//secret.tunn.localhost/x`, `/\\secret.tunn.localhost/x`]) {
      const res = await rawRequest(relay.httpPort, `GET ${path} HTTP/1.1\r\nHost: ${host('pub')}\r\nConnection: close\r\n\r\n`);
      assert.match(res, /^HTTP\/1\.1 400 /, path);
      assert.match(res, /single leading slash/, path);
    }
    assert.equal(origin.seen.length, before, 'nothing reached the origin');
  });

  it('drops reserved headers in every spelling on public and gated tunnels; only the relay’s identity arrives (security: finding 3)', async () => {
    const forged = {
      Tunn_User_Email: 'forged@evil.example',
      'tunn-user-email': 'forged@evil.example',
      TUNN_JWT_ASSERTION: 'forged',
      X_Forwarded_For: '6.6.6.6',
      'X_Forwarded-Host': 'evil.example',
      X_Real_Ip: '6.6.6.6',
      'CF-Connecting-IP': '6.6.6.6',
      X_Cluster_Client_IP: '6.6.6.6',
      'Client-IP': '6.6.6.6',
      'Fastly-Client-IP': '6.6.6.6',
      'X-Forwarded': 'for=6.6.6.6',
      'X-App': 'kept',
    };
    for (const [name, auth] of [['pub', {}], ['priv', { Authorization: `Bearer ${token}` }]] as const) {
      const r = await request(`http://${host(name)}/ids`, { headers: { ...forged, ...auth } });
      assert.equal(r.status, 200, name);
      const raw = (JSON.parse(r.text) as Seen).rawHeaders;
      assert.deepEqual(spelledAs(raw, 'tunn-user-email'), name === 'priv' ? ['alice@example.com'] : [], `${name}: Tunn-User-Email in any spelling`);
      assert.equal(spelledAs(raw, 'tunn-jwt-assertion').length, name === 'priv' ? 1 : 0, `${name}: only the relay's assertion`);
      assert.ok(!spelledAs(raw, 'tunn-jwt-assertion').includes('forged'), name);
      assert.deepEqual(spelledAs(raw, 'x-forwarded-for'), ['127.0.0.1'], name);
      assert.deepEqual(spelledAs(raw, 'x-forwarded-host'), [host(name)], name);
      assert.deepEqual(spelledAs(raw, 'x-real-ip'), [], name);
      for (const h of ['cf-connecting-ip', 'x-cluster-client-ip', 'client-ip', 'fastly-client-ip', 'x-forwarded']) assert.deepEqual(spelledAs(raw, h), [], `${name}: ${h}`);
      assert.ok(!raw.includes('6.6.6.6'), `${name}: no forged client address arrives`);
      assert.deepEqual(values(raw, 'x-app'), ['kept'], name);
      assert.deepEqual(values(raw, 'authorization'), [], `${name}: the tunn token is not passed on`);
    }
  });

  it('removes what Connection names and forwards none of its tokens (security: finding 4)', async () => {
    const r = await request(`http://${host('priv')}/conn`, {
      headers: { Authorization: `Bearer ${token}`, Connection: 'keep-alive, Tunn-User-Email, X-Forwarded-For, X-Hop', 'X-Hop': 'secret', 'X-App': 'kept' },
    });
    assert.equal(r.status, 200);
    const raw = (JSON.parse(r.text) as Seen).rawHeaders;
    assert.deepEqual(values(raw, 'connection'), [], 'no inbound Connection tokens reach the origin');
    assert.deepEqual(values(raw, 'x-hop'), []);
    assert.deepEqual(values(raw, 'tunn-user-email'), ['alice@example.com']);
    assert.deepEqual(values(raw, 'x-forwarded-for'), ['127.0.0.1']);
    assert.deepEqual(values(raw, 'x-app'), ['kept']);
  });

  it('strips tunn cookies and tunn tokens on a public tunnel; other cookies and the app’s own Authorization pass unchanged (security: finding 5)', async () => {
    const r = await request(`http://${host('pub')}/cookies`, { headers: { Cookie: 'a=1;b="x y";  __Host-tunn=SESSION; tunn=S2; tunn_oidc=o; theme=dark', Authorization: `Bearer ${token}` } });
    const raw = (JSON.parse(r.text) as Seen).rawHeaders;
    assert.deepEqual(values(raw, 'cookie'), ['a=1;b="x y"; theme=dark']);
    assert.deepEqual(values(raw, 'authorization'), [], 'a tunn token is tunn’s, never the origin’s');
    const own = await request(`http://${host('pub')}/cookies2`, { headers: { Cookie: 'app=1; other=2', Authorization: 'Bearer app-secret' } });
    const ownRaw = (JSON.parse(own.text) as Seen).rawHeaders;
    assert.deepEqual([values(ownRaw, 'cookie'), values(ownRaw, 'authorization')], [['app=1; other=2'], ['Bearer app-secret']]);
  });

  it('drops reserved names from chunked request trailers; other trailers arrive (security: identity cannot ride in trailers)', async () => {
    const body = '5\r\nhello\r\n0\r\nTunn-User-Email: forged@evil.example\r\nTunn_Jwt_Assertion: forged\r\nX-Forwarded-For: 6.6.6.6\r\nX-Checksum: abc\r\n\r\n';
    const res = await rawRequest(relay.httpPort, `POST /trailers HTTP/1.1\r\nHost: ${host('pub')}\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\nConnection: close\r\n\r\n${body}`);
    assert.match(res, /^HTTP\/1\.1 200 /);
    const seen = origin.seen.find((s) => s.url === '/trailers')!;
    assert.deepEqual(seen.rawTrailers, ['X-Checksum', 'abc']);
  });

  // Guards: no request smuggling through chunk-size lines. A bare LF in a chunk extension ends
  // the line for an origin that accepts LF alone (Go before CVE-2025-22871's fix), which then
  // reads the "chunk data" as a second request carrying a forged Tunn-User-Email.
  it('refuses a chunk-size line with a bare LF; nothing of the smuggled request reaches the origin (security: chunk framing)', async () => {
    const smuggled = `GET /admin HTTP/1.1\r\nHost: ${host('raw')}\r\nTunn-User-Email: admin@corp.example\r\nContent-Length: 0\r\n\r\n`;
    const inner = `0\r\n\r\n${smuggled}`;
    const body = `${inner.length.toString(16)};x\n${'A'.repeat(inner.length)}\r\n${inner}\r\n0\r\n\r\n`;
    const before = rawOrigin.connections.length;
    const res = await rawRequest(relay.httpPort, `POST /x HTTP/1.1\r\nHost: ${host('raw')}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`);
    assert.match(res, /^HTTP\/1\.1 400 /);
    assert.match(res, /bare LF in chunk size line/, 'the error says what was wrong');
    const seen = rawOrigin.connections.slice(before).join('');
    assert.ok(!seen.includes('/admin') && !seen.includes('admin@corp.example'), `the origin received: ${JSON.stringify(seen)}`);
  });

  // Guards: the origin gets the relay's own chunk-size lines (hex size, CRLF), not the
  // visitor's bytes: an extension or a spelling the origin would read differently stops here.
  it('re-emits chunk-size lines in canonical form, extensions dropped (security: chunk framing)', async () => {
    const before = rawOrigin.connections.length;
    const body = '5;name="v;x"\r\nhello\r\n00A ; a=b\r\n0123456789\r\n0;last=1\r\nX-Sum: 1\r\n\r\n';
    const res = await rawRequest(relay.httpPort, `POST /chunks HTTP/1.1\r\nHost: ${host('raw')}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body}`);
    assert.match(res, /^HTTP\/1\.1 200 /);
    const seen = rawOrigin.connections.slice(before).join('');
    assert.equal(seen.slice(seen.indexOf('\r\n\r\n') + 4), '5\r\nhello\r\na\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n', 'exact bytes of the body at the origin');
  });

  // Guards: responses stay in request order. A 100 Continue is not the end of an exchange, so
  // the relay's own answer to a pipelined request waits for the origin's final response.
  it('writes a local answer to a pipelined request after the final response, not after a 100 Continue', async () => {
    const c = await rawConn(relay.httpPort);
    c.sock.write(`POST /continue-late HTTP/1.1\r\nHost: ${host('raw')}\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n`);
    await until(() => c.text().includes('100 Continue'), 10_000, 'the 100');
    c.sock.write(`GET /elsewhere HTTP/1.1\r\nHost: ${host('nosuchtunnel')}\r\n\r\n`);
    await until(() => (c.text().match(/HTTP\/1\.1 \d{3}/g) ?? []).length >= 3, 10_000, 'three status lines').catch((e: Error) => assert.fail(`${e.message}: ${JSON.stringify(c.text())}`));
    assert.deepEqual(c.text().match(/HTTP\/1\.1 \d{3}/g), ['HTTP/1.1 100', 'HTTP/1.1 200', 'HTTP/1.1 404']);
    c.sock.destroy();
  });

  it('forwards h2c as plain HTTP/1.1, without Upgrade or HTTP2-Settings (security: finding 6, the visitor gets no HTTP/2 past the gate)', async () => {
    const res = await rawRequest(relay.httpPort, `GET /h2c HTTP/1.1\r\nHost: ${host('up')}\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`);
    assert.match(res, /^HTTP\/1\.1 200 /, 'answered over HTTP/1.1');
    const head = res.slice(res.indexOf('\r\n\r\n') + 4).toLowerCase();
    assert.match(head, /^get \/h2c http\/1\.1/);
    assert.doesNotMatch(head, /upgrade|http2-settings/, 'the origin saw no upgrade');
  });

  it('keeps a real h2c client working: curl --http2 gets its answer over HTTP/1.1', async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile('curl', ['--http2', '-sS', '-i', '--max-time', '20', '--connect-to', `::127.0.0.1:${relay.httpPort}`, `http://${host('up')}/curl-h2c`], (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    assert.match(out, /^HTTP\/1\.1 200 /, 'curl offered h2c and was answered over HTTP/1.1');
    assert.match(out, /GET \/curl-h2c HTTP\/1\.1/);
    assert.doesNotMatch(out.slice(out.indexOf('GET /curl-h2c')), /upgrade|http2-settings/i, 'the origin saw no upgrade');
  });

  it('never goes raw for h2c, even when the origin answers 101 regardless (security: finding 6)', async () => {
    const c = await rawConn(relay.httpPort);
    c.sock.write(`GET /always-101 HTTP/1.1\r\nHost: ${host('up')}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`);
    await until(() => c.text().includes('101 Switching Protocols'), 10_000, 'the 101');
    // What an h2c client sends next: the connection preface and a HEADERS frame naming an identity.
    c.sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00tunn-user-email: forged@evil.example');
    await Promise.race([c.closed, new Promise((r) => setTimeout(r, 10_000))]);
    assert.ok(c.sock.destroyed || c.sock.readableEnded, 'the relay closed the connection');
    assert.match(c.text(), /400 Bad Request/, 'the preface was read as a malformed HTTP/1.1 request');
    assert.ok(!upOrigin.received().includes('PRI * HTTP/2.0'), 'no HTTP/2 byte reached the origin');
    assert.ok(!upOrigin.received().includes('forged@evil.example'));
    c.sock.destroy();
  });

  it('forwards WebSocket with only Connection: upgrade, and goes raw after its 101', async () => {
    const c = await rawConn(relay.httpPort);
    c.sock.write(`GET /ws HTTP/1.1\r\nHost: ${host('up')}\r\nConnection: keep-alive, Upgrade, Tunn-User-Email\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await until(() => c.text().includes('101 Switching Protocols'), 10_000, 'the 101');
    c.sock.write('ws-frame-bytes');
    await until(() => upOrigin.received().includes('ws-frame-bytes'), 10_000, 'raw bytes at the origin');
    const got = upOrigin.received();
    const head = got.slice(got.lastIndexOf('GET /ws '), got.indexOf('\r\n\r\n', got.lastIndexOf('GET /ws ')));
    assert.deepEqual(head.split('\r\n').filter((l) => /^(connection|upgrade):/i.test(l)), ['Connection: upgrade', 'Upgrade: websocket']);
    c.sock.destroy();
  });

  it('passes on a WebSocket frame sent in the same write as the upgrade request, after the 101', async () => {
    // A masked text frame "first" (RFC 6455 §5.2), as a client that does not wait for the 101 sends it.
    const mask = Buffer.from([1, 2, 3, 4]);
    const payload = Buffer.from('first');
    const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]);
    const c = await rawConn(relay.httpPort);
    const upgrade = `GET /ws HTTP/1.1\r\nHost: ${host('wsapp')}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    c.sock.write(Buffer.concat([Buffer.from(upgrade, 'latin1'), frame]));
    // The origin (ws) greets, then echoes the frame it got: unmasked text frame "first".
    await until(() => c.text().includes('\x81\x05first'), 10_000, 'the echo of the first frame').catch((e: Error) => assert.fail(`${e.message}: ${JSON.stringify(c.text())}`));
    assert.match(c.text(), /^HTTP\/1\.1 101 /);
    c.sock.destroy();
  });

  it('parses what follows an upgrade request as HTTP when the origin declines the upgrade', async () => {
    const res = await rawRequest(
      relay.httpPort,
      `GET /declined HTTP/1.1\r\nHost: ${host('pub')}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n` +
        `GET /after-declined HTTP/1.1\r\nHost: ${host('pub')}\r\nConnection: close\r\n\r\n`,
    );
    assert.deepEqual(res.match(/HTTP\/1\.1 \d{3}/g), ['HTTP/1.1 200', 'HTTP/1.1 200'], res);
    assert.ok(origin.seen.some((s) => s.url === '/after-declined'), 'the pipelined request reached the origin');
  });

  it('refuses other upgrades with what to do, and forwards them when the tunnel opted in with --allow-upgrade', async () => {
    const refused = await rawRequest(relay.httpPort, `GET /foo HTTP/1.1\r\nHost: ${host('up')}\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n`);
    assert.match(refused, /^HTTP\/1\.1 400 /);
    assert.match(refused, /--allow-upgrade foo/);
    assert.ok(!upOrigin.received().includes('GET /foo '), 'the refused upgrade did not reach the origin');
    const c = await rawConn(relay.httpPort);
    c.sock.write(`GET /foo HTTP/1.1\r\nHost: ${host('optin')}\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n`);
    await until(() => c.text().includes('101 Switching Protocols'), 10_000, 'the 101');
    c.sock.write('foo-protocol-bytes');
    await until(() => upOrigin.received().includes('foo-protocol-bytes'), 10_000, 'raw bytes at the origin');
    c.sock.destroy();
  });

  it('refuses --allow-upgrade h2c at the agent, saying why', async () => {
    const p = startCli([String(origin.port), '--relay', relay.url, '--token', token, '--relay-ca', relay.caPath, '--public', '--allow-upgrade', 'h2c']);
    assert.notEqual(await p.exited, 0);
    assert.match(p.stderr.join('\n'), /--allow-upgrade h2c: upgrades to HTTP\/2 \(h2c\) are never forwarded/);
  });

  it('answers a tunnel whose target is down without naming the target; the agent’s log has the address (security: no internal address leaks)', async () => {
    const r = await request(`http://${host('down')}/`);
    assert.equal(r.status, 502);
    assert.match(r.text, /service behind this tunnel is not answering/);
    assert.doesNotMatch(r.text, new RegExp(`127\\.0\\.0\\.1|localhost:|${downPort}`));
    await down.proc.waitFor((l) => l.event === 'notice' && String(l.message).includes(`:${downPort}`) && String(l.message).includes('ECONNREFUSED'));
  });
});
