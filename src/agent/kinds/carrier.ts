import type { ServerHttp2Stream } from 'node:http2';
import { splicedH2Stream } from '../../protocol/h2-stream.ts';
import type { Duplex } from 'node:stream';
import { refusalResponse, type Refusal } from '../../protocol/stream-refusal.ts';

// The stream a kind handler carries a connection on, and the three answers it can give the side
// that opened it. The handlers (tcp.ts, udp.ts) know nothing of HTTP/2: h2Carrier adapts an
// HTTP/2 stream the relay opened to the agent, and any duplex pair serves in tests.

export interface StreamCarrier {
  readonly stream: Duplex;
  /** The target is reached: the opener may send (HTTP/2: a 200 response, stream left open). */
  accept(): void;
  /** Nothing was reached: a typed refusal (stream-refusal.ts), and the stream ends. */
  refuse(r: Refusal): void;
  /** The connection failed or idled out after accept (HTTP/2: RST_STREAM CONNECT_ERROR, RFC 9113 §8.5). */
  abort(): void;
  /**
   * Whether the opener reset the stream. Node's HTTP/2 stream emits 'end' and 'finish' on a
   * RST_STREAM as on a clean close, so the handler asks instead of inferring it from events.
   */
  wasReset(): boolean;
}

/** Counters a handler adds to as bytes and datagrams pass (the relay's /metrics reads its own). */
export interface KindCounters {
  bytesToTarget: number;
  bytesFromTarget: number;
  datagramsToTarget: number;
  datagramsFromTarget: number;
  /** Datagrams dropped, by reason (oversize, backpressure, unknown-capsule, …). */
  drops: Record<string, number>;
}

export function newKindCounters(): KindCounters {
  return { bytesToTarget: 0, bytesFromTarget: 0, datagramsToTarget: 0, datagramsFromTarget: 0, drops: {} };
}

export function countDrop(c: KindCounters | undefined, reason: string): void {
  if (c) c.drops[reason] = (c.drops[reason] ?? 0) + 1;
}

export function h2Carrier(stream: ServerHttp2Stream): StreamCarrier {
  const spliced = splicedH2Stream(stream);
  return {
    stream,
    accept() {
      if (!stream.headersSent && !stream.destroyed) stream.respond({ ':status': 200 });
    },
    refuse(r) {
      if (stream.destroyed) return;
      if (stream.headersSent) return this.abort();
      const { headers, body } = refusalResponse(r);
      stream.respond(headers);
      stream.end(body);
    },
    abort: spliced.reset,
    wasReset: spliced.wasReset,
  };
}
