import { once } from 'node:events';
import net, { type Socket } from 'node:net';

// A loopback TCP forwarder a test can cut and restore: "the CA cannot be reached" (refused
// connections, live ones dropped) while the CA process, its state and its issuing root stay
// the same, so clients that trust that root at start keep trusting what it issues later.

export interface TcpGate {
  readonly port: number;
  /** Whether connections are forwarded now. */
  readonly isOpen: boolean;
  /** Listens again on the same port and forwards to the target. */
  open(): Promise<void>;
  /** Stops listening (new connections are refused) and drops the live ones. */
  close(): Promise<void>;
}

export async function startTcpGate(target: { host: string; port: number }): Promise<TcpGate> {
  const live = new Set<Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      live.add(s);
      s.on('close', () => live.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  let isOpen = true;
  return {
    port,
    get isOpen() {
      return isOpen;
    },
    async open() {
      if (isOpen) return;
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
      isOpen = true;
    },
    async close() {
      if (!isOpen) return;
      isOpen = false;
      const closed = new Promise((r) => server.close(r));
      for (const s of live) s.destroy();
      await closed;
    },
  };
}
