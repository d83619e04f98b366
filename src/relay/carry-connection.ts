import type { Socket } from 'node:net';
import { resetSocket, splice, spliceStreams, type SpliceOptions, type SpliceOutcome, type SplicedStream } from '../lib/splice.ts';
import type { ClientAddress, PortTunnel } from './public-port-tunnel.ts';

// One accepted TCP connection carried to a tunnel on its own stream: what a public TCP port does
// with each connection, and what the edge's TLS passthrough route does with a connection whose
// ClientHello it peeked (`head`: the bytes already read, sent first, so the target's TLS stack
// sees the handshake whole). The relay never decrypts a passthrough connection. The same for a
// connection another relay of the cluster accepted and carried here over the link
// (carryStream: the link's stream stands where the socket was).

export interface CarryOptions {
  idleTimeoutMs: number;
  /** Bytes already read from the socket (the peeked ClientHello), to send before the rest. */
  head?: Buffer;
}

/** Resolves with how the connection ended, or 'refused' when the tunnel could not take it (the socket is reset). */
export async function carryConnection(socket: Socket, t: PortTunnel, o: CarryOptions): Promise<SpliceOutcome | 'refused'> {
  socket.on('error', () => {});
  // Bytes the client sends while the stream opens wait in the socket.
  socket.pause();
  return carry(t, { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }, o, {
    gone: () => socket.destroyed,
    refuse: () => resetSocket(socket),
    splice: (stream, so) => splice(socket, stream, so),
  });
}

/** carryConnection for a connection carried here as a stream (the cluster link's), not a socket. */
export async function carryStream(link: SplicedStream, t: PortTunnel, client: ClientAddress, o: CarryOptions): Promise<SpliceOutcome | 'refused'> {
  link.stream.on('error', () => {});
  return carry(t, client, o, {
    gone: () => link.stream.destroyed,
    refuse: () => link.reset(),
    splice: (stream, so) => spliceStreams(link, stream, so),
  });
}

interface Incoming {
  gone(): boolean;
  refuse(): void;
  splice(stream: SplicedStream, o: SpliceOptions): Promise<SpliceOutcome>;
}

async function carry(t: PortTunnel, client: ClientAddress, o: CarryOptions, incoming: Incoming): Promise<SpliceOutcome | 'refused'> {
  let stream;
  try {
    stream = await t.open(client);
  } catch {
    t.metrics.drop('open-failed');
    incoming.refuse();
    return 'refused';
  }
  if (incoming.gone()) {
    stream.reset();
    return 'aborted';
  }
  t.metrics.connections++;
  t.metrics.open++;
  if (o.head?.length) {
    t.metrics.bytesIn += o.head.length;
    stream.stream.write(o.head);
  }
  const outcome = await incoming.splice(stream, {
    idleTimeoutMs: o.idleTimeoutMs,
    onBytes: (fromClient, toClient) => {
      t.metrics.bytesIn += fromClient;
      t.metrics.bytesOut += toClient;
    },
  });
  t.metrics.open--;
  return outcome;
}
