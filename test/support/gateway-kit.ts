import type http2 from 'node:http2';
import type net from 'node:net';

// Small pieces the gateway and http-proxy tests share: a listener on a loopback port, a wait
// with a generous ceiling (the machine is shared), and counting occurrences in recorded bytes.

/** Listens on 127.0.0.1 port 0 and resolves with the port. */
export async function listen(server: net.Server | http2.Http2Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return (server.address() as net.AddressInfo).port;
}

/** Polls `cond` every 20 ms; rejects naming `what` after `timeoutMs`. */
export async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** How many times `needle` occurs in `text`. */
export function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}
