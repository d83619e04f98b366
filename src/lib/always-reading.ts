import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

// Node's HTTP/2 session stops reading its socket while one of its own writes is still in
// progress (node_http2.cc, Http2Session::MaybeStopReading: `want_read == 0 ||
// is_write_in_progress()`; nodejs/node#29399). When both ends of one connection send more than
// the kernel buffers between them hold — bulk data both ways at once with windows of several
// MiB, which the data path needs for throughput — both ends are mid-write, both stop reading,
// and neither write can ever finish: the whole session stalls for good (seen on the agent link:
// Recv-Q and Send-Q full on both ends, zero-window probes both ways).
//
// Giving the session of ONE end this wrapper instead of the socket breaks the cycle: the socket
// is read whatever the session does, so the other end's writes always complete, it keeps
// reading, and this end's writes complete too. What is read while the session does not take it
// waits here; that is bounded by the flow-control windows this end advertised (data the peer
// may send without our WINDOW_UPDATE), i.e. memory this end already promised to accept.
// The cost is one JavaScript hop per chunk on this end (Node wraps a non-native stream in a
// JSStreamSocket), so it goes on one end of each link only, the one that is not the relay.

/** A duplex over `socket` that reads it all the time, for an HTTP/2 session to use instead of the socket. */
export function alwaysReading(socket: Socket): Duplex {
  const d = new Duplex({
    // Reading is driven by the socket's 'data' events, never paused by the consumer.
    read() {},
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    writev(chunks, cb) {
      socket.cork();
      for (let i = 0; i < chunks.length - 1; i++) socket.write(chunks[i]!.chunk);
      socket.write(chunks[chunks.length - 1]!.chunk, cb);
      socket.uncork();
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      if (!socket.destroyed) socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  socket.on('data', (chunk: Buffer) => d.push(chunk));
  socket.on('end', () => d.push(null));
  // The session learns why the connection failed (it reports it as its own 'error').
  socket.on('error', (err) => d.destroy(err));
  socket.on('close', () => d.destroy());
  return d;
}
