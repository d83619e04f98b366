import { createServer } from 'node:net';

/** A TCP port free on `host` (a loopback address) right now, for programs that cannot listen on port 0 and report it (Pebble, a relay's --node-url). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
