import { once } from 'node:events';
import net, { type Server as NetServer } from 'node:net';
import { errorMessage, TunnError } from '../lib/errors.ts';

/** Listens on `port` (0: any free one) at `address`; returns the port. A port in use or privileged says what to do. */
export async function listenOn(servers: NetServer[], what: string, port: number, address: string, onSocket: (s: net.Socket) => void): Promise<number> {
  const server = net.createServer(onSocket);
  servers.push(server);
  server.listen(port, address);
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e))]);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint = code === 'EADDRINUSE' ? `port ${port} is in use: pick another with --${what.toLowerCase()}-port (0 = any free port)` : code === 'EACCES' ? `port ${port} needs privileges: pick a port above 1023` : errorMessage(err);
    throw new TunnError('CONFIG_INVALID', `cannot listen for ${what}: ${hint}`, { cause: err });
  }
  return (server.address() as net.AddressInfo).port;
}
