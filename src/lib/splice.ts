import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

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

export function splice(socket: Socket, s: SplicedStream, o: SpliceOptions): Promise<SpliceOutcome> {
  const { stream } = s;
  return new Promise((resolve) => {
    let outcome: SpliceOutcome | undefined;
    const resetSocket = (): void => {
      if (socket.destroyed) return;
      // A reset must reach the other side as a reset, not as a clean end of the data.
      if (socket.readyState === 'open' || socket.readyState === 'readOnly' || socket.readyState === 'writeOnly') socket.resetAndDestroy();
      else socket.destroy();
    };
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
      resetSocket();
      s.reset();
    });
    socket.on('error', () => {
      outcome ??= 'reset';
      s.reset();
    });
    const streamGone = (): void => {
      if (s.wasReset() || !(stream.readableEnded && stream.writableFinished)) {
        outcome ??= 'aborted';
        resetSocket();
      }
    };
    stream.once('close', streamGone);
    stream.on('error', () => {
      outcome ??= 'aborted';
      resetSocket();
    });
    if (socket.destroyed) return resolve(outcome ?? 'aborted');
    socket.once('close', () => resolve(outcome ?? 'closed'));
  });
}
