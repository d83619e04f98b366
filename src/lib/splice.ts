import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';

// One TCP socket spliced to one stream (an HTTP/2 stream of the agent link or of `tunn connect`),
// the same on every hop: the agent's target side, the relay's public TCP port, the connect
// client's local side. Half-closes cross both ways (a FIN becomes END_STREAM and back); a reset
// on either side resets the other; a connection silent both ways for idleTimeoutMs is closed.

export interface SplicedStream {
  readonly stream: Duplex;
  /**
   * Whether the peer reset the stream. Node's HTTP/2 stream emits 'end' and 'finish' on a
   * RST_STREAM as on a clean close, so this is asked rather than read from events.
   */
  wasReset(): boolean;
  /** Resets the stream (an unfinished one only). */
  reset(): void;
}

/** How long a stream's end waits to be told apart from a reset before it becomes a FIN. */
export const HALF_CLOSE_GRACE_MS = 25;

export type SpliceOutcome = 'closed' | 'reset' | 'idle' | 'aborted';

export interface SpliceOptions {
  idleTimeoutMs: number;
  /** Bytes from the socket into the stream, and from the stream into the socket. */
  onBytes?(fromSocket: number, toSocket: number): void;
}

/**
 * Ends `socket` with a reset (RST), so its peer sees a failure rather than a clean end of the data.
 * A TLSSocket (TLS ended here, as for `tunn tls --backend tcp`) is destroyed instead: Node resets
 * only a TCP handle and throws ERR_INVALID_HANDLE_TYPE for a TLS one, which, uncaught, ends the relay.
 */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (!(socket instanceof TLSSocket) && (socket.readyState === 'open' || socket.readyState === 'readOnly' || socket.readyState === 'writeOnly')) socket.resetAndDestroy();
  else socket.destroy();
}

export function splice(socket: Socket, s: SplicedStream, o: SpliceOptions): Promise<SpliceOutcome> {
  const { stream } = s;
  return new Promise((resolve) => {
    let outcome: SpliceOutcome | undefined;
    if (o.onBytes) {
      const f = o.onBytes;
      stream.on('data', (d: Buffer) => f(0, d.length));
      socket.on('data', (d: Buffer) => f(d.length, 0));
    }
    // The stream's END_STREAM becomes shutdown(SHUT_WR), but not at once: Node emits 'end' for a
    // RST_STREAM too, and the reset (rstCode, 'close') shows only a moment later (measured: one
    // event-loop turn). A reset must reach the socket as a reset, not as a clean end of the data
    // (a truncated transfer would look complete), so the FIN waits for the stream's 'close' or a
    // short grace, whichever comes first. Under extreme load the reset can come later still; the
    // socket then sees a FIN followed by a reset, and the connection ends either way.
    stream.pipe(socket, { end: false });
    stream.once('end', () => {
      let decided = false;
      const decide = (): void => {
        if (decided) return;
        decided = true;
        clearTimeout(grace);
        stream.off('close', decide);
        if (!s.wasReset()) socket.end();
      };
      const grace = setTimeout(decide, HALF_CLOSE_GRACE_MS);
      stream.once('close', decide);
    });
    socket.pipe(stream);
    socket.setTimeout(o.idleTimeoutMs, () => {
      outcome ??= 'idle';
      resetSocket(socket);
      s.reset();
    });
    socket.on('error', () => {
      outcome ??= 'reset';
      s.reset();
    });
    const streamGone = (): void => {
      if (s.wasReset() || !(stream.readableEnded && stream.writableFinished)) {
        outcome ??= 'aborted';
        resetSocket(socket);
      }
    };
    stream.once('close', streamGone);
    stream.on('error', () => {
      outcome ??= 'aborted';
      resetSocket(socket);
    });
    if (socket.destroyed) return resolve(outcome ?? 'aborted');
    socket.once('close', () => resolve(outcome ?? 'closed'));
  });
}

/**
 * Two streams spliced to each other (the relay's side of `tunn connect`: the client's HTTP/2
 * stream to the agent's): the same rules as splice() — half-closes cross, a reset on one side
 * resets the other, silence both ways for idleTimeoutMs resets both.
 */
export function spliceStreams(a: SplicedStream, b: SplicedStream, o: SpliceOptions): Promise<SpliceOutcome> {
  return new Promise((resolve) => {
    let outcome: SpliceOutcome | undefined;
    let closed = 0;
    let last = Date.now();
    const onClosed = (): void => {
      if (++closed === 2) {
        clearInterval(idle);
        resolve(outcome ?? 'closed');
      }
    };
    const direction = (from: SplicedStream, to: SplicedStream, count: (n: number) => void): void => {
      from.stream.on('data', (d: Buffer) => {
        last = Date.now();
        count(d.length);
      });
      from.stream.pipe(to.stream, { end: false });
      from.stream.once('end', () => {
        let decided = false;
        const decide = (): void => {
          if (decided) return;
          decided = true;
          clearTimeout(grace);
          from.stream.off('close', decide);
          if (!from.wasReset() && !to.stream.writableEnded) to.stream.end();
        };
        const grace = setTimeout(decide, HALF_CLOSE_GRACE_MS);
        from.stream.once('close', decide);
      });
      from.stream.once('close', () => {
        if (from.wasReset() || !(from.stream.readableEnded && from.stream.writableFinished)) {
          outcome ??= 'aborted';
          to.reset();
        }
        onClosed();
      });
      from.stream.on('error', () => {
        outcome ??= 'aborted';
        to.reset();
      });
    };
    direction(a, b, (n) => o.onBytes?.(n, 0));
    direction(b, a, (n) => o.onBytes?.(0, n));
    const idle = setInterval(() => {
      if (Date.now() - last < o.idleTimeoutMs) return;
      outcome ??= 'idle';
      a.reset();
      b.reset();
    }, Math.max(50, Math.min(o.idleTimeoutMs / 4, 30_000)));
    idle.unref();
  });
}
