import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';

/**
 * A TCP target on 127.0.0.1 port 0: `onConn` gets each accepted socket (half-open allowed;
 * socket errors are swallowed so a reset by the far side does not crash the test).
 */
export async function tcpTarget(onConn: (s: Socket) => void): Promise<{ port: number; close(): void }> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    onConn(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}
