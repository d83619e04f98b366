import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { LookupFunction } from 'node:net';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { WebSocket } from 'ws';
import { localhostAwareLookup } from '../../src/agent/target.ts';
import { createDomain, markDomainVerified, setDomainShares } from '../../src/domains/records.ts';
import { ensureAccount } from '../../src/store/accounts.ts';
import { openStore } from '../../src/store/store.ts';
import { formTokenIn } from '../fixtures/identity.ts';
import { createToken, devSignIn, request, startAgent, startCli, startRelay, tmpDir, until, type AgentHandle, type RelayHandle } from './harness.ts';
import { startOrigin, type Origin } from './origin.ts';

// Revocation reaches live connections, end to end: real relay and agent processes, a real
// WebSocket origin (`ws`), visitors signed in through the dev login or holding tokens.
// Security property: once a visitor's session or token is revoked (sign-out, `tunn token
// revoke`), or the visitor is removed from the tunnel's allow-list, the connections they
// already hold through the relay — upgraded (WebSocket), mid-response (an event stream) and
// idle keep-alive — are cut within 5 s, while other visitors' connections stay up; an agent
// whose token is revoked is told so and its tunnel goes offline; a tunnel on a custom domain
// that is unshared or deleted goes offline. Without the relay's sweep, each of these
// connections would run on until the idle timeout.

/** The relay sweeps every 2 s; this ceiling is generous for a shared machine and far below the idle timeout. */
const CUT_WITHIN_MS = 10_000;

/** Resolves every name to loopback (custom domains have no DNS in this test). */
const loopback: LookupFunction = (_h, o, cb) => {
  if (o.all) (cb as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
  else cb(null, '127.0.0.1', 4);
};

/** An open WebSocket through the relay, after its first message from the origin. */
async function openWs(url: string, headers: Record<string, string> = {}, lookup: LookupFunction = localhostAwareLookup as never): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers, lookup: lookup as never });
  ws.on('error', () => {});
  const [first] = (await Promise.race([once(ws, 'message'), once(ws, 'unexpected-response').then(([, res]) => Promise.reject(new Error(`upgrade refused: ${(res as { statusCode: number }).statusCode}`)))])) as [Buffer];
  assert.match(first.toString(), /^hello /);
  return ws;
}

/** Still open and carrying messages both ways. */
async function echoes(ws: WebSocket): Promise<void> {
  assert.equal(ws.readyState, WebSocket.OPEN);
  ws.send('ping?');
  const [m] = (await once(ws, 'message')) as [Buffer];
  assert.equal(m.toString(), 'ping?');
}

/** Resolves with the time from `since` to the close of `ws`; rejects after CUT_WITHIN_MS. */
function closedWithin(ws: WebSocket, since: number): Promise<number> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve(Date.now() - since);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the WebSocket is still open ${CUT_WITHIN_MS} ms after the revocation`)), CUT_WITHIN_MS);
    ws.once('close', () => {
      clearTimeout(t);
      resolve(Date.now() - since);
    });
  });
}

/** A raw keep-alive connection that made one allowed request; resolves `closed` when the relay ends it. */
async function keptAlive(port: number, host: string, headers: string): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const closed = once(socket, 'close').then(() => {});
  socket.on('error', () => {});
  socket.write(`GET /echo HTTP/1.1\r\nHost: ${host}\r\n${headers}Connection: keep-alive\r\n\r\n`);
  // Read the whole response (Content-Length or chunked) and keep the connection open.
  const got = await new Promise<string>((resolve, reject) => {
    let buf = '';
    const onData = (c: Buffer): void => {
      buf += c.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = /\r\ncontent-length: *(\d+)/i.exec(buf.slice(0, end));
      const done = len ? buf.length >= end + 4 + Number(len[1]) : buf.endsWith('\r\n0\r\n\r\n');
      if (!done) return;
      socket.off('data', onData);
      resolve(buf);
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`the connection closed before the response ended: ${buf.slice(0, 200)}`)));
  });
  assert.match(got, /^HTTP\/1\.1 200 /, 'the request on the kept-alive connection was allowed');
  return { socket, closed };
}

function within(p: Promise<unknown>, what: string): Promise<unknown> {
  return Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${CUT_WITHIN_MS} ms`)), CUT_WITHIN_MS))]);
}

describe('revocation cuts live connections', () => {
  let relay: RelayHandle;
  let origin: Origin;
  let agent: AgentHandle;
  let aliceToken: string;
  const cfg = tmpDir('tunn-revocation-cfg-');
  let tunnelHost: string; // host:port on the plain-HTTP port

  /** Runs a CLI command against the relay and returns its last JSON line. */
  async function cli(args: string[], token: string): Promise<Record<string, unknown>> {
    const p = startCli([...args, '--relay', relay.url, '--relay-ca', relay.caPath, '--token', token, '--json'], { env: { TUNN_CONFIG_DIR: cfg.path } });
    const code = await p.exited;
    if (code !== 0) throw new Error(`tunn ${args.join(' ')} exited ${code}: ${p.stderr.join('\n')}`);
    return p.lines[p.lines.length - 1]!;
  }

  /** Signs `email` in with the dev login and hands the session to the tunnel host: the two cookies. */
  async function signIn(email: string): Promise<{ relayCookie: string; hostCookie: string }> {
    return devSignIn(relay, email, `http://${tunnelHost}/`);
  }


  before(async () => {
    origin = await startOrigin();
    relay = await startRelay();
    aliceToken = await createToken(relay, 'alice@example.com');
    await cli(['group', 'create', 'eng', 'carol@example.com'], aliceToken);
    agent = await startAgent(relay, aliceToken, origin.port, ['-n', 'chat', '-a', 'bob@example.com', '-a', 'group:eng']);
    tunnelHost = new URL(agent.httpUrl).host;
  });
  after(async () => {
    await agent?.stop();
    await relay?.stop();
    await origin?.close();
    cfg.remove();
  });

  it('sign-out cuts that visitor’s WebSocket, event stream and kept-alive connection within 5 s; another visitor’s stay', async () => {
    const bob = await signIn('bob@example.com');
    const bob2 = await signIn('bob@example.com'); // another browser of the same person: not signed out
    const wsUrl = `ws://${tunnelHost}/ws`;
    const ws = await openWs(wsUrl, { Cookie: bob.hostCookie });
    const other = await openWs(wsUrl, { Cookie: bob2.hostCookie });
    const ka = await keptAlive(relay.httpPort, tunnelHost, `Cookie: ${bob.hostCookie}\r\n`);
    const sse = net.connect(relay.httpPort, '127.0.0.1');
    sse.on('error', () => {});
    sse.write(`GET /sse HTTP/1.1\r\nHost: ${tunnelHost}\r\nCookie: ${bob.hostCookie}\r\n\r\n`);
    const [first] = (await once(sse, 'data')) as [Buffer];
    assert.match(first.toString(), /^HTTP\/1\.1 200 /);
    const sseClosed = once(sse, 'close');
    await echoes(ws);

    // Sign out on the relay: revokes the relay session and every host session handed off from it.
    const t0 = Date.now();
    const form = await request(`${relay.url}/logout`, { ca: relay.ca, headers: { cookie: bob.relayCookie } });
    const out = await request(`${relay.url}/logout`, { method: 'POST', ca: relay.ca, headers: { cookie: bob.relayCookie, origin: relay.url, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf: formTokenIn(form.text) }).toString() });
    assert.equal(out.status, 200, out.text);
    const took = await closedWithin(ws, t0);
    await within(ka.closed, 'the kept-alive connection is closed');
    await within(sseClosed, 'the event stream is cut');
    assert.ok(took < CUT_WITHIN_MS, `cut after ${took} ms`);
    await echoes(other);
    other.close();
  });

  it('a revoked personal access token cuts the WebSocket and kept-alive connections it opened', async () => {
    const bobToken = await createToken(relay, 'bob@example.com');
    const pat = (await cli(['token', 'create', '--name', 'ws'], bobToken)) as { token: string; id: string };
    const auth = { Authorization: `Bearer ${pat.token}` };
    const ws = await openWs(`ws://${tunnelHost}/ws`, auth);
    const ka = await keptAlive(relay.httpPort, tunnelHost, `Authorization: Bearer ${pat.token}\r\n`);
    const stays = await openWs(`ws://${tunnelHost}/ws`, { Authorization: `Bearer ${bobToken}` });
    const t0 = Date.now();
    await cli(['token', 'revoke', pat.id], bobToken);
    await closedWithin(ws, t0);
    await within(ka.closed, 'the kept-alive connection is closed');
    await echoes(stays);
    stays.close();
    const again = await request(`${agent.httpUrl}/echo`, { headers: auth });
    assert.equal(again.status, 401);
  });

  // Guards: a request pipelined behind a still-streaming response does not take over the
  // connection's identity. The event stream was opened with token T1; a second request on the
  // same connection came with T2. Revoking T1 must still cut the stream.
  it('a revoked token cuts the response it is streaming even after a request with another token was pipelined behind it', async () => {
    const bobToken = await createToken(relay, 'bob@example.com');
    const t1 = (await cli(['token', 'create', '--name', 'pipe-1'], bobToken)) as { token: string; id: string };
    const t2 = (await cli(['token', 'create', '--name', 'pipe-2'], bobToken)) as { token: string; id: string };
    const sse = net.connect(relay.httpPort, '127.0.0.1');
    sse.on('error', () => {});
    await once(sse, 'connect');
    const closed = once(sse, 'close');
    sse.write(`GET /sse HTTP/1.1\r\nHost: ${tunnelHost}\r\nAuthorization: Bearer ${t1.token}\r\n\r\n`);
    const [first] = (await once(sse, 'data')) as [Buffer];
    assert.match(first.toString(), /^HTTP\/1\.1 200 /);
    sse.write(`GET /echo?pipelined=${t2.id} HTTP/1.1\r\nHost: ${tunnelHost}\r\nAuthorization: Bearer ${t2.token}\r\n\r\n`);
    // The pipelined request passes the gate and reaches the origin (which answers it after the stream).
    await until(() => origin.received.includes(`/echo?pipelined=${t2.id}`), CUT_WITHIN_MS, 'the pipelined request at the origin');
    await cli(['token', 'revoke', t1.id], bobToken);
    await within(closed, 'the stream opened with the revoked token is cut');
  });

  it('removing a visitor from the allow-list (a group) cuts their live WebSocket', async () => {
    const carolToken = await createToken(relay, 'carol@example.com');
    const ws = await openWs(`ws://${tunnelHost}/ws`, { Authorization: `Bearer ${carolToken}` });
    await echoes(ws);
    const t0 = Date.now();
    await cli(['group', 'rm', 'eng', 'carol@example.com'], aliceToken);
    await closedWithin(ws, t0);
  });

  it('a revoked agent token ends the agent’s session: the agent is told, its tunnel and connections go', async () => {
    const p = startCli(['relay', 'token', 'create', '--email', 'alice@example.com', '--data-dir', relay.dataDir, '--json']);
    const line = await p.waitFor((l) => l.event === 'token');
    const token = String(line.token);
    const jti = String(decodeJwt(token).jti);
    const second = await startAgent(relay, token, origin.port, ['-n', 'second', '--public']);
    const ws = await openWs(`${second.httpUrl.replace('http:', 'ws:')}/ws`);
    try {
      const t0 = Date.now();
      await cli(['token', 'revoke', jti], aliceToken);
      await closedWithin(ws, t0);
      const fatal = await second.proc.waitFor((l) => l.event === 'fatal', CUT_WITHIN_MS);
      assert.equal(fatal.code, 'AUTH_TOKEN_REVOKED');
      assert.match(String(fatal.message), /revoked.*tunn relay token create/);
      await within(second.proc.exited, 'the agent exits');
      const gone = await request(`${second.httpUrl}/echo`);
      assert.notEqual(gone.status, 200, 'the tunnel is offline');
    } finally {
      await second.stop();
    }
  });

  // Issue 17: the same holds for a personal access token (`tunn token create`) used as the agent's token.
  it('a revoked personal access token used as the agent token ends the agent within seconds', async () => {
    const pat = (await cli(['token', 'create', '--name', 'agent-pat'], aliceToken)) as { token: string; id: string };
    const viaPat = await startAgent(relay, pat.token, origin.port, ['-n', 'via-pat', '--public', '--no-inspect']);
    try {
      assert.equal((await request(`${viaPat.httpUrl}/echo`)).status, 200);
      await cli(['token', 'revoke', pat.id], aliceToken);
      const fatal = await viaPat.proc.waitFor((l) => l.event === 'fatal', CUT_WITHIN_MS);
      assert.equal(fatal.code, 'AUTH_TOKEN_REVOKED');
      await within(viaPat.proc.exited, 'the agent exits');
      assert.notEqual((await request(`${viaPat.httpUrl}/echo`)).status, 200, 'the tunnel is offline');
    } finally {
      await viaPat.stop();
    }
  });

  it('unsharing a custom domain takes the tunnels of the one unshared offline; deleting it takes the owner’s', async () => {
    // The domain is seeded verified in the relay's store (DNS verification has its own e2e test,
    // domains.test.ts); the unshare and delete go through the API like a user's.
    const store = await openStore(join(relay.dataDir, 'tunn.db'));
    try {
      const dave = await ensureAccount(store, 'dave@example.com');
      await createDomain(store, { accountId: dave.id, acmeId: dave.acme_id, domain: 'shop.example.test', relayDomain: relay.domain });
      await markDomainVerified(store, 'shop.example.test');
      await setDomainShares(store, 'shop.example.test', ['alice@example.com']);
    } finally {
      await store.close();
    }
    const daveToken = await createToken(relay, 'dave@example.com');
    const shared = await startAgent(relay, aliceToken, origin.port, ['-n', 'alice', '-d', 'shop.example.test', '--public']);
    const owned = await startAgent(relay, daveToken, origin.port, ['-n', 'shopfront', '-d', 'shop.example.test', '--public']);
    try {
      assert.equal(shared.host, 'alice.shop.example.test');
      const port = relay.httpPort;
      const sharedWs = await openWs(`ws://alice.shop.example.test:${port}/ws`, {}, loopback);
      const ownedWs = await openWs(`ws://shopfront.shop.example.test:${port}/ws`, {}, loopback);

      let t0 = Date.now();
      await cli(['domain', 'unshare', 'shop.example.test', 'alice@example.com'], daveToken);
      await closedWithin(sharedWs, t0);
      const fatal = await shared.proc.waitFor((l) => l.event === 'fatal', CUT_WITHIN_MS);
      assert.equal(fatal.code, 'FORBIDDEN');
      assert.match(String(fatal.message), /no longer shared with alice@example\.com/);
      await echoes(ownedWs);

      t0 = Date.now();
      await cli(['domain', 'delete', 'shop.example.test'], daveToken);
      await closedWithin(ownedWs, t0);
      const fatal2 = await owned.proc.waitFor((l) => l.event === 'fatal', CUT_WITHIN_MS);
      assert.match(String(fatal2.message), /shop\.example\.test was deleted/);
      const gone = await new Promise<number>((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: shopfront.shop.example.test\r\nConnection: close\r\n\r\n'));
        s.once('data', (d: Buffer) => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(d.toString())?.[1])));
        s.on('error', reject);
      });
      assert.notEqual(gone, 200, 'the tunnel is offline');
    } finally {
      await shared.stop();
      await owned.stop();
    }
  });
});
