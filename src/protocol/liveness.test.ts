import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import net, { type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { watchLiveness } from './liveness.ts';

/** An HTTP/2 client session through a TCP proxy that can freeze (drop everything silently). */
async function frozenLink(): Promise<{ session: http2.ClientHttp2Session; socket: Socket; freeze(): void; close(): void }> {
  const server = http2.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  let frozen = false;
  const proxy = net.createServer((inbound) => {
    const out = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    inbound.on('data', (d) => frozen || out.write(d));
    out.on('data', (d) => frozen || inbound.write(d));
    inbound.on('error', () => out.destroy());
    out.on('error', () => inbound.destroy());
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  const socket = net.connect((proxy.address() as net.AddressInfo).port, '127.0.0.1');
  await once(socket, 'connect');
  const session = http2.connect('http://x.invalid', { createConnection: () => socket });
  session.on('error', () => {});
  await once(session, 'connect');
  return {
    session,
    socket,
    freeze: () => (frozen = true),
    close: () => {
      session.destroy();
      proxy.close();
      server.close();
    },
  };
}

describe('watchLiveness', () => {
  const cleanups: (() => void)[] = [];
  after(() => cleanups.forEach((c) => c()));

  it('keeps a healthy link, and declares a silently dead one dead', async () => {
    const link = await frozenLink();
    cleanups.push(link.close);
    let dead = '';
    const stop = watchLiveness({ session: link.session, socket: link.socket, intervalMs: 100, timeoutMs: 1000, onDead: (r) => (dead = r) });
    cleanups.push(stop);
    // Several ping rounds on a healthy link: still alive.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(dead, '');
    assert.equal(link.socket.destroyed, false);
    link.freeze();
    const end = Date.now() + 10_000;
    while (!dead && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.match(dead, /no answer to ping/);
    assert.equal(link.socket.destroyed, true);
  });
});
