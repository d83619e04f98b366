import dgram from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { freePort } from './ports.ts';

/** A port free for both TCP and UDP on 127.0.0.1 right now (for `tunn relay --tcp-ports/--udp-ports`). */
export async function freeTcpUdpPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort();
    const s = dgram.createSocket('udp4');
    try {
      s.bind(port, '127.0.0.1');
      await once(s, 'listening');
      return (s.address() as AddressInfo).port;
    } catch {
      // Taken for UDP: try another.
    } finally {
      s.close();
    }
  }
  throw new Error('no port free for both TCP and UDP on 127.0.0.1');
}
