import dgram from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { CapsuleDecoder, encodeDatagram, MAX_UDP_PAYLOAD } from '../protocol/capsules.ts';
import type { SplicedStream } from '../lib/splice.ts';
import type { PortTunnel, PortTunnelLookup } from './public-port-tunnel.ts';

// A public UDP port on the relay (`tunn udp 51820 -n wg --public` → udp://relay:20007): each
// client flow (source address and port) becomes one stream to the tunnel's agent, datagrams as
// RFC 9297 capsules. UDP sources can be spoofed, so per-IP limits bound nothing: flows are
// capped per port (tunnel) and across the relay (a FlowBudget shared by every UDP port), and the
// relay never answers on its own. The only datagrams a client receives are those the target sent
// back on that client's flow, byte for byte: no refusal, no error, no amplification by the relay.

/** The relay-wide cap on UDP flows, shared by all public UDP ports. */
export class FlowBudget {
  readonly max: number;
  open = 0;
  constructor(max: number) {
    this.max = max;
  }
}

export interface PublicUdpPortOptions {
  port: number;
  host: string;
  tunnel: PortTunnelLookup;
  budget: FlowBudget;
  /** Open flows on this port at once (default 1000). */
  maxFlows?: number;
  /** A flow with no datagram either way for this long ends (default 60 s). */
  flowIdleMs?: number;
  /** The largest datagram carried either way (default 65507). */
  maxDatagram?: number;
  /** Datagrams held per flow while its stream opens (default 64); more are dropped. */
  maxPending?: number;
  /** Datagrams are dropped while this much is queued on a flow's stream (default 1 MiB). */
  maxQueuedBytes?: number;
}

interface Flow {
  key: string;
  tunnel: PortTunnel;
  stream?: SplicedStream;
  pending: Buffer[];
  last: number;
  /** Bytes of datagrams the target sent on this flow, and bytes sent to the client: sent ≤ received, always. */
  fromTarget: number;
  toClient: number;
}

export class PublicUdpPort {
  readonly #o: PublicUdpPortOptions;
  readonly #socket: dgram.Socket;
  readonly #flows = new Map<string, Flow>();
  #sweep: NodeJS.Timeout | undefined;

  constructor(o: PublicUdpPortOptions, type: 'udp4' | 'udp6' = o.host.includes(':') ? 'udp6' : 'udp4') {
    this.#o = o;
    this.#socket = dgram.createSocket(type);
    this.#socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo));
    // Errors of a send to one client (ICMP unreachable, …) do not concern the others.
    this.#socket.on('error', () => {});
  }

  async listen(): Promise<number> {
    this.#socket.bind(this.#o.port, this.#o.host);
    await once(this.#socket, 'listening');
    const idle = this.#o.flowIdleMs ?? 60_000;
    this.#sweep = setInterval(() => this.#endIdle(idle), Math.max(50, Math.min(idle / 4, 5_000)));
    this.#sweep.unref();
    return this.port;
  }

  get port(): number {
    return (this.#socket.address() as AddressInfo).port;
  }

  get flows(): number {
    return this.#flows.size;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweep);
    for (const f of [...this.#flows.values()]) this.#end(f, true);
    await new Promise<void>((r) => this.#socket.close(() => r()));
  }

  #onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const key = `${rinfo.address}|${rinfo.port}`;
    let f = this.#flows.get(key);
    if (!f) {
      const t = this.#o.tunnel();
      // Nothing is sent back to a refused source: it may not be who it claims to be.
      if (!t) return;
      if (!t.admits(rinfo.address)) return t.metrics.drop('allow-ip');
      // One port serves one tunnel, so the port's flows are the tunnel's.
      if (this.#flows.size >= (this.#o.maxFlows ?? 1000)) return t.metrics.drop('flow-limit');
      if (this.#o.budget.open >= this.#o.budget.max) return t.metrics.drop('flow-limit-relay');
      f = { key, tunnel: t, pending: [], last: Date.now(), fromTarget: 0, toClient: 0 };
      this.#flows.set(key, f);
      this.#o.budget.open++;
      t.metrics.flows++;
      t.metrics.flowsOpen++;
      void this.#open(f, rinfo);
    }
    const m = f.tunnel.metrics;
    f.last = Date.now();
    if (msg.length > (this.#o.maxDatagram ?? MAX_UDP_PAYLOAD)) return m.drop('oversize');
    m.datagramsIn++;
    m.bytesIn += msg.length;
    if (!f.stream) {
      if (f.pending.length >= (this.#o.maxPending ?? 64)) return m.drop('backpressure');
      f.pending.push(msg);
      return;
    }
    this.#forward(f, msg);
  }

  #forward(f: Flow, msg: Buffer): void {
    const s = f.stream!.stream;
    if (s.writableLength > (this.#o.maxQueuedBytes ?? 1024 * 1024)) return f.tunnel.metrics.drop('backpressure');
    s.write(encodeDatagram(msg));
  }

  async #open(f: Flow, rinfo: dgram.RemoteInfo): Promise<void> {
    try {
      f.stream = await f.tunnel.open({ address: rinfo.address, port: rinfo.port });
    } catch {
      f.tunnel.metrics.drop('open-failed');
      return this.#end(f, false);
    }
    if (this.#flows.get(f.key) !== f) return f.stream.reset();
    const m = f.tunnel.metrics;
    const decoder = new CapsuleDecoder({
      maxDatagram: this.#o.maxDatagram,
      onDatagram: (payload) => {
        f.last = Date.now();
        f.fromTarget += payload.length;
        // The invariant that makes amplification impossible, checked rather than assumed.
        if (f.toClient + payload.length > f.fromTarget) return m.drop('amplification');
        f.toClient += payload.length;
        m.datagramsOut++;
        m.bytesOut += payload.length;
        this.#socket.send(payload, rinfo.port, rinfo.address);
      },
      onDrop: (reason) => m.drop(reason),
    });
    const s = f.stream.stream;
    s.on('data', (c: Buffer) => {
      try {
        decoder.push(c);
      } catch {
        m.drop('malformed');
        this.#end(f, true);
      }
    });
    s.on('error', () => this.#end(f, false));
    s.once('close', () => this.#end(f, false));
    s.once('end', () => this.#end(f, false));
    for (const msg of f.pending.splice(0)) this.#forward(f, msg);
  }

  #endIdle(idleMs: number): void {
    const now = Date.now();
    for (const f of [...this.#flows.values()]) if (now - f.last >= idleMs) this.#end(f, true);
  }

  /** Ends a flow: `closeStream` ends our side of its stream too (idle, relay closing). */
  #end(f: Flow, closeStream: boolean): void {
    if (this.#flows.get(f.key) !== f) return;
    this.#flows.delete(f.key);
    this.#o.budget.open--;
    f.tunnel.metrics.flowsOpen--;
    if (closeStream && f.stream && !f.stream.stream.writableEnded) f.stream.stream.end();
  }
}
