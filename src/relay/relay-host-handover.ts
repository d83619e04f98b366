import { Duplex } from 'node:stream';
import type { MessageHead } from '../lib/http1.ts';
import { serializeHead } from './forward-headers.ts';
import type { PublicSocket } from './proxy-state.ts';

// The hand-over to node:http: a public connection whose first request is for the relay's own
// host goes to the relay's HTTP server (own-host.ts) with the bytes the proxy already read;
// one for a tunnel another relay of the cluster holds is joined to a stream to that relay.

/**
 * The connection as node:http must read it: the first request's head as received, then what
 * was read after it as received (`rest`: its body and every byte after it, pipelined requests
 * included; RequestReader.takeRest).
 */
export function handOver(socket: PublicSocket, head: MessageHead, rest: Buffer[], remoteAddress: string, encrypted: boolean): Duplex {
  return prependedDuplex(socket, Buffer.concat([serializeHead(head, head.headers), ...rest]), remoteAddress, encrypted);
}

/**
 * A Duplex over `socket` that first yields `prefix` (bytes already read from it). Used to
 * hand a connection to node:http after the gateway parsed its first request head.
 */
function prependedDuplex(socket: PublicSocket, prefix: Buffer, remoteAddress: string, encrypted: boolean): Duplex {
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void) {
      if (socket.write(chunk)) cb();
      else socket.once('drain', () => cb());
    },
    final(cb: (err?: Error | null) => void) {
      socket.end(cb);
    },
    destroy(err: Error | null, cb: (err?: Error | null) => void) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  Object.defineProperty(d, 'remoteAddress', { value: remoteAddress });
  Object.defineProperty(d, 'encrypted', { value: encrypted });
  // node:http calls these socket methods on the connection it serves.
  Object.assign(d, {
    setTimeout: (ms: number, cb?: () => void) => {
      socket.setTimeout(ms, cb);
      return d;
    },
    setNoDelay: () => d,
    setKeepAlive: () => d,
  });
  if (prefix.length) d.push(prefix);
  socket.on('data', (c: Buffer) => {
    if (!d.push(c)) socket.pause();
  });
  socket.on('end', () => d.push(null));
  socket.on('error', (e) => d.destroy(e));
  socket.on('close', () => d.destroy());
  socket.resume();
  return d;
}

/** Pipes two duplexes into each other (half-closes pass on); either one failing or closing ends both. */
export function joinDuplexes(a: Duplex, b: Duplex): void {
  const end = (): void => {
    a.destroy();
    b.destroy();
  };
  a.pipe(b);
  b.pipe(a);
  a.on('error', end);
  b.on('error', end);
  a.on('close', end);
  b.on('close', end);
}
