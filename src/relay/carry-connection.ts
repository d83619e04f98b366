import type { Socket } from 'node:net';
import { splice, type SpliceOutcome } from '../lib/splice.ts';
import type { PortTunnel } from './public-port-tunnel.ts';

// One accepted TCP connection carried to a tunnel on its own stream: what a public TCP port does
// with each connection, and what the edge's TLS passthrough route does with a connection whose
// ClientHello it peeked (`head`: the bytes already read, sent first, so the target's TLS stack
// sees the handshake whole). The relay never decrypts a passthrough connection.

export interface CarryOptions {
  idleTimeoutMs: number;
  /** Bytes already read from the socket (the peeked ClientHello), to send before the rest. */
  head?: Buffer;
}

/** Resolves with how the connection ended, or 'refused' when the tunnel could not take it (the socket is reset). */
export async function carryConnection(socket: Socket, t: PortTunnel, o: CarryOptions): Promise<SpliceOutcome | 'refused'> {
  const ip = socket.remoteAddress ?? '';
  socket.on('error', () => {});
  // Bytes the client sends while the stream opens wait in the socket.
  socket.pause();
  let stream;
  try {
    stream = await t.open({ address: ip, port: socket.remotePort ?? 0 });
  } catch {
    t.metrics.drop('open-failed');
    socket.resetAndDestroy();
    return 'refused';
  }
  if (socket.destroyed) {
    stream.reset();
    return 'aborted';
  }
  t.metrics.connections++;
  t.metrics.open++;
  if (o.head?.length) {
    t.metrics.bytesIn += o.head.length;
    stream.stream.write(o.head);
  }
  const outcome = await splice(socket, stream, {
    idleTimeoutMs: o.idleTimeoutMs,
    onBytes: (fromClient, toClient) => {
      t.metrics.bytesIn += fromClient;
      t.metrics.bytesOut += toClient;
    },
  });
  t.metrics.open--;
  return outcome;
}
