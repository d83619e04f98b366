import net, { type LookupFunction } from 'node:net';
import { splice, type SpliceOutcome } from '../../lib/splice.ts';
import type { Refusal } from '../../protocol/stream-refusal.ts';
import type { KindCounters, StreamCarrier } from './carrier.ts';

// Stream kind `tcp` on the agent (also what a `tls` tunnel's raw bytes ride): one stream is one
// TCP connection to the target. Half-closes cross both ways: the opener ending its side
// (END_STREAM) becomes shutdown(SHUT_WR) on the target socket, and the target's FIN ends the
// stream's other side; the connection is over when both sides are. A target that refuses is a
// typed refusal at once; a target that resets later aborts the stream; a connection silent in
// both directions for idleTimeoutMs is closed (src/lib/splice.ts, shared with the relay's public
// ports and `tunn connect`).

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

export type TcpOutcome = SpliceOutcome | 'refused';

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
    const socket = net.connect({ host: o.target.host, port: o.target.port, allowHalfOpen: true, noDelay: true, lookup: o.lookup });
    const connectTimer = setTimeout(() => socket.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })), o.connectTimeoutMs ?? DEFAULT_CONNECT_MS);
    const failed = (err: NodeJS.ErrnoException): void => {
      clearTimeout(connectTimer);
      carrier.refuse(targetRefusal(err, o.target));
      resolve('refused');
    };
    // The opener gave up before the target answered.
    const gone = (): void => {
      clearTimeout(connectTimer);
      socket.destroy();
      resolve('aborted');
    };
    socket.once('error', failed);
    stream.once('close', gone);
    socket.once('connect', () => {
      clearTimeout(connectTimer);
      socket.off('error', failed);
      stream.off('close', gone);
      carrier.accept();
      if (o.proxyHeader) socket.write(o.proxyHeader);
      const c = o.counters;
      const onBytes = c
        ? (fromTarget: number, toTarget: number): void => {
            c.bytesFromTarget += fromTarget;
            c.bytesToTarget += toTarget;
          }
        : undefined;
      void splice(socket, { stream, wasReset: () => carrier.wasReset(), reset: () => carrier.abort() }, { idleTimeoutMs: o.idleTimeoutMs ?? DEFAULT_TCP_IDLE_MS, onBytes }).then(resolve);
    });
  });
}
