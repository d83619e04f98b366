import dgram from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { CapsuleDecoder, DatagramWriter, MAX_UDP_PAYLOAD } from '../../protocol/capsules.ts';
import { UDP_SOCKET_BUFFER } from '../../protocol/udp-flows.ts';
import { countDrop, type KindCounters, type StreamCarrier } from './carrier.ts';
import type { TcpTarget } from './tcp.ts';

// Stream kind `udp` on the agent: one stream is one client flow (one client address and port);
// its bytes are RFC 9297 DATAGRAM capsules both ways (src/protocol/capsules.ts). The agent talks
// to the target from one connected UDP socket per flow, so the target's answers come back to the
// right flow. UDP stays lossy on purpose: a datagram over the limit, or one that would queue
// behind a slow stream, is dropped and counted rather than buffered or fragmented.

export interface UdpKindOptions {
  target: TcpTarget;
  /** Close the flow after this long with no datagram either way (default 60 s). */
  idleTimeoutMs?: number;
  /** The largest datagram carried either way (default the IPv4 maximum, 65507). */
  maxDatagram?: number;
  /** Datagrams from the target are dropped while this much is queued on the stream (default 1 MiB). */
  maxQueuedBytes?: number;
  /** Resolves the target's host (default dns.lookup; tests pass their own). */
  resolve?: (host: string) => Promise<{ address: string; family: 4 | 6 }>;
  counters?: KindCounters;
  now?: () => number;
}

export type UdpOutcome = 'closed' | 'idle' | 'refused' | 'aborted';

export const DEFAULT_UDP_FLOW_IDLE_MS = 60_000;

async function defaultResolve(host: string): Promise<{ address: string; family: 4 | 6 }> {
  const family = isIP(host);
  if (family) return { address: host, family: family as 4 | 6 };
  const r = await dnsLookup(host);
  return { address: r.address, family: r.family as 4 | 6 };
}

export async function carryUdp(carrier: StreamCarrier, o: UdpKindOptions): Promise<UdpOutcome> {
  const { stream } = carrier;
  const now = o.now ?? Date.now;
  const max = o.maxDatagram ?? MAX_UDP_PAYLOAD;
  const c = o.counters;
  let addr: { address: string; family: 4 | 6 };
  try {
    addr = await (o.resolve ?? defaultResolve)(o.target.host);
  } catch (err) {
    carrier.refuse({ reason: 'target_unreachable', message: `cannot resolve ${o.target.host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return 'refused';
  }
  // Buffers big enough for a burst at tens of thousands of datagrams/s (the kernel caps them at
  // net.core.rmem_max / wmem_max).
  const socket = dgram.createSocket({ type: addr.family === 6 ? 'udp6' : 'udp4', recvBufferSize: UDP_SOCKET_BUFFER, sendBufferSize: UDP_SOCKET_BUFFER });
  const writer = new DatagramWriter(stream);
  return new Promise((resolve) => {
    let outcome: UdpOutcome | undefined;
    let last = now();
    let timer: NodeJS.Timeout | undefined;
    const finish = (how: UdpOutcome): void => {
      if (outcome) return;
      outcome = how;
      clearTimeout(timer);
      socket.close();
      if (how === 'idle' || how === 'closed') {
        writer.flush();
        stream.end();
      }
      if (how === 'idle') carrier.abort();
      resolve(how);
    };
    const idleMs = o.idleTimeoutMs ?? DEFAULT_UDP_FLOW_IDLE_MS;
    // One timer per flow, re-armed for the rest of the period rather than reset per datagram.
    const arm = (ms: number): void => {
      timer = setTimeout(() => {
        const quiet = now() - last;
        if (quiet >= idleMs) finish('idle');
        else arm(idleMs - quiet);
      }, ms);
      timer.unref();
    };

    const decoder = new CapsuleDecoder({
      maxDatagram: max,
      onDatagram: (payload) => {
        last = now();
        if (c) {
          c.datagramsToTarget++;
          c.bytesToTarget += payload.length;
        }
        socket.send(payload, (err) => err && countDrop(c, 'send-error'));
      },
      onDrop: (reason) => countDrop(c, reason),
    });

    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A connected UDP socket reports the target's ICMP "port unreachable" as ECONNREFUSED:
      // that datagram is lost, the flow stays (UDP services come and go).
      countDrop(c, err.code === 'ECONNREFUSED' ? 'target-refused' : 'socket-error');
    });
    socket.on('message', (msg) => {
      last = now();
      if (msg.length > max) return countDrop(c, 'oversize');
      if (writer.queued > (o.maxQueuedBytes ?? 1024 * 1024)) return countDrop(c, 'backpressure');
      if (c) {
        c.datagramsFromTarget++;
        c.bytesFromTarget += msg.length;
      }
      writer.write(msg);
    });
    socket.connect(o.target.port, addr.address, () => {
      carrier.accept();
      arm(idleMs);
      stream.on('data', (chunk: Buffer) => {
        try {
          decoder.push(chunk);
        } catch {
          countDrop(c, 'malformed');
          finish('aborted');
          carrier.abort();
        }
      });
    });
    stream.once('end', () => setImmediate(() => finish(carrier.wasReset() ? 'aborted' : 'closed')));
    stream.once('close', () => finish(carrier.wasReset() ? 'aborted' : 'closed'));
    stream.on('error', () => finish('aborted'));
  });
}
