import net, { type LookupFunction } from 'node:net';
import type { Refusal } from '../../protocol/stream-refusal.ts';
import type { KindCounters, StreamCarrier } from './carrier.ts';

// Stream kind `tcp` on the agent (also what a `tls` tunnel's raw bytes ride): one stream is one
// TCP connection to the target. Half-closes cross both ways: the opener ending its side
// (END_STREAM) becomes shutdown(SHUT_WR) on the target socket, and the target's FIN ends the
// stream's other side; the connection is over when both sides are. A target that refuses is a
// typed refusal at once; a target that resets later aborts the stream; a connection silent in
// both directions for idleTimeoutMs is closed.

export interface TcpTarget {
  host: string;
  port: number;
}

export interface TcpKindOptions {
  target: TcpTarget;
  /** Close after this long with no byte either way (default an hour: raw TCP is often long-lived and quiet). */
  idleTimeoutMs?: number;
  /** Give up reaching the target after this long (default 10 s). */
  connectTimeoutMs?: number;
  /** Bytes the target reads first (a PROXY v2 header, src/lib/proxy-v2.ts), for targets that ask for one. */
  proxyHeader?: Buffer;
  lookup?: LookupFunction;
  counters?: KindCounters;
}

export type TcpOutcome = 'closed' | 'refused' | 'reset' | 'idle' | 'aborted';

export const DEFAULT_TCP_IDLE_MS = 3_600_000;
const DEFAULT_CONNECT_MS = 10_000;

/** What a failed connect to the target means, in a refusal's words. */
export function targetRefusal(err: NodeJS.ErrnoException, t: TcpTarget): Refusal {
  const where = `${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
  if (err.code === 'ECONNREFUSED') return { reason: 'target_refused', message: `nothing accepts connections at ${where} (connection refused): is the service running?` };
  if (err.code === 'ETIMEDOUT') return { reason: 'target_timeout', message: `${where} did not answer in time` };
  return { reason: 'target_unreachable', message: `cannot reach ${where}: ${err.code ?? err.message}` };
}

/** Carries one connection to the target; resolves with how it ended (for logs and counters). */
export function carryTcp(carrier: StreamCarrier, o: TcpKindOptions): Promise<TcpOutcome> {
  const { stream } = carrier;
  return new Promise((resolve) => {
    let outcome: TcpOutcome | undefined;
    const end = (how: TcpOutcome): void => {
      outcome ??= how;
    };
    const socket = net.connect({ host: o.target.host, port: o.target.port, allowHalfOpen: true, noDelay: true, lookup: o.lookup });
    const connectTimer = setTimeout(() => socket.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })), o.connectTimeoutMs ?? DEFAULT_CONNECT_MS);
    let connected = false;

    socket.once('connect', () => {
      clearTimeout(connectTimer);
      connected = true;
      carrier.accept();
      if (o.proxyHeader) socket.write(o.proxyHeader);
      if (o.counters) {
        const c = o.counters;
        stream.on('data', (d: Buffer) => (c.bytesToTarget += d.length));
        socket.on('data', (d: Buffer) => (c.bytesFromTarget += d.length));
      }
      // The half-close, each way: the target's FIN ends the stream's side (pipe's end), and the
      // opener's END_STREAM becomes shutdown(SHUT_WR) on the socket. That one waits a turn of the
      // event loop: Node emits 'end' for a RST_STREAM too, before the reset is visible, and a reset
      // must reach the target as a reset, not as a clean end of the request.
      stream.pipe(socket, { end: false });
      stream.once('end', () => setImmediate(() => carrier.wasReset() || socket.end()));
      socket.pipe(stream);
      socket.setTimeout(o.idleTimeoutMs ?? DEFAULT_TCP_IDLE_MS, () => {
        end('idle');
        socket.resetAndDestroy();
        carrier.abort();
      });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(connectTimer);
      if (!connected) {
        end('refused');
        carrier.refuse(targetRefusal(err, o.target));
      } else {
        end('reset');
        carrier.abort();
      }
    });
    socket.once('close', () => {
      clearTimeout(connectTimer);
      resolve(outcome ?? 'closed');
    });
    // The opener went away without finishing (a reset, a dropped session): nothing more is
    // delivered either way. A stream closing after both sides ended is the normal end and
    // leaves the socket to flush and close on its own.
    stream.once('close', () => {
      if (carrier.wasReset() || !(stream.readableEnded && stream.writableFinished)) {
        end('aborted');
        // The target learns of the abort as a reset, not as a clean end of the request.
        if (connected && !socket.destroyed) socket.resetAndDestroy();
        else socket.destroy();
      }
    });
    stream.on('error', () => {
      end('aborted');
      socket.destroy();
    });
  });
}
