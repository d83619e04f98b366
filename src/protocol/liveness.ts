import type { Http2Session } from 'node:http2';
import type { Socket } from 'node:net';

// Both ends of the agent link PING each other: a session can die without an event (a
// network that drops packets silently), and only an unanswered PING shows it. Under load a
// PING ack can queue behind megabytes of DATA for seconds on a healthy link, so the link is
// declared dead only if nothing at all arrived while the ping was out.

export interface LivenessOptions {
  session: Http2Session;
  socket: Socket;
  intervalMs: number;
  timeoutMs: number;
  /** Called once when the link is dead; the socket has been destroyed. */
  onDead(reason: string): void;
}

/** Starts pinging; returns a function that stops it. */
export function watchLiveness(o: LivenessOptions): () => void {
  let outstanding = false;
  let timer: NodeJS.Timeout | undefined;
  const interval = setInterval(() => {
    const { session: s, socket: sock } = o;
    if (s.destroyed || sock.destroyed || outstanding) return;
    const readAtPing = sock.bytesRead;
    timer = setTimeout(() => {
      // Let this loop iteration read what the kernel already holds (timers run before I/O
      // polling), so a stalled event loop is not mistaken for a dead link.
      setImmediate(() => {
        if (sock.destroyed || !outstanding) return;
        if (sock.bytesRead === readAtPing) {
          sock.destroy();
          o.onDead(`no answer to ping for ${o.timeoutMs} ms`);
        } else {
          outstanding = false;
        }
      });
    }, o.timeoutMs);
    timer.unref();
    try {
      outstanding = s.ping(() => {
        clearTimeout(timer);
        outstanding = false;
      });
    } catch {
      clearTimeout(timer);
      sock.destroy();
      o.onDead('ping failed');
    }
  }, o.intervalMs);
  interval.unref();
  return () => {
    clearInterval(interval);
    clearTimeout(timer);
  };
}
