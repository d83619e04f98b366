import net from 'node:net';
import { parseProxyV2 } from '../../src/lib/proxy-v2.ts';

export type ParsedProxyV2 = NonNullable<ReturnType<typeof parseProxyV2>>;

/**
 * A plain TCP target behind --proxy-protocol (not yet listening): each connection collects bytes
 * until they hold a whole PROXY v2 header and at least `minPayload` bytes after it; from then on,
 * on every chunk, `onHeader` gets the socket, the parsed header and the bytes after it. Socket
 * errors are swallowed (a reset by the far side does not crash the test).
 */
export function proxyV2Target(minPayload: number, onHeader: (s: net.Socket, r: ParsedProxyV2, payload: Buffer) => void): net.Server {
  return net.createServer((s) => {
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const r = parseProxyV2(buf);
      if (!r || buf.length < r.length + minPayload) return;
      onHeader(s, r, buf.subarray(r.length));
    });
  });
}
