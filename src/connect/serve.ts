import dgram from 'node:dgram';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { errorMessage } from '../lib/errors.ts';
import { splice, type SplicedStream } from '../lib/splice.ts';
import { UdpFlows } from '../protocol/udp-flows.ts';

// What `tunn connect` does with the streams a ConnectClient opens: listen locally and carry each
// accepted TCP connection (or each UDP peer) on its own stream, or carry stdin/stdout as one
// connection (ssh's ProxyCommand). The relay decides every stream again: a refused one closes its
// local connection at once and says why.

/** Opens one stream to the tunnel (ConnectClient.open), or throws the refusal. */
export type OpenStream = () => Promise<SplicedStream>;

export interface ServeEvents {
  /** A local connection or UDP peer could not be carried, and why (the relay's message). */
  refused(peer: string, message: string): void;
  /** A carried connection ended. */
  closed?(peer: string, outcome: string): void;
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses `--listen [addr:]port`: a bare port means loopback, so lending one's identity to the LAN takes an explicit address. */
export function parseListen(spec: string): ListenAddress | { error: string } {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^:[\]]+):)?(\d{1,5})$/.exec(spec.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) return { error: `--listen "${spec}": use a port (15432, on 127.0.0.1) or address:port (0.0.0.0:15432, [::1]:15432)` };
  const host = (m[1] ?? '127.0.0.1').replace(/^\[|\]$/g, '');
  if (host !== 'localhost' && net.isIP(host) === 0) return { error: `--listen "${spec}": "${host}" is not an IP address; use 127.0.0.1, ::1 or 0.0.0.0` };
  return { host, port };
}

export function formatListen(a: { host: string; port: number }): string {
  return `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

export interface Listening {
  address: ListenAddress;
  close(): Promise<void>;
}

export async function serveTcp(open: OpenStream, at: ListenAddress, ev: ServeEvents, idleTimeoutMs = 3_600_000): Promise<Listening> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    const peer = formatListen({ host: socket.remoteAddress ?? '?', port: socket.remotePort ?? 0 });
    socket.on('error', () => {});
    socket.pause();
    open().then(
      async (stream) => {
        if (socket.destroyed) return stream.reset();
        // Not inside `ev.closed?.(…)`: an optional call skips evaluating its arguments.
        const outcome = await splice(socket, stream, { idleTimeoutMs });
        ev.closed?.(peer, outcome);
      },
      (err: unknown) => {
        socket.resetAndDestroy();
        ev.refused(peer, errorMessage(err));
      },
    );
  });
  server.listen(at.port, at.host);
  await once(server, 'listening');
  const a = server.address() as AddressInfo;
  return { address: { host: a.address, port: a.port }, close: () => new Promise((r) => server.close(() => r())) };
}

export async function serveUdp(open: OpenStream, at: ListenAddress, ev: ServeEvents, flowIdleMs = 60_000): Promise<Listening> {
  const socket = dgram.createSocket(net.isIPv6(at.host) ? 'udp6' : 'udp4');
  socket.on('error', () => {});
  // Every local peer is carried (the relay decides each flow); one that is refused hears nothing.
  const flows = new UdpFlows<string>({
    idleMs: flowIdleMs,
    admit: (peer) => formatListen({ host: peer.address, port: peer.port }),
    open: () => open(),
    send: (payload, peer) => socket.send(payload, peer.port, peer.address),
    on: { openFailed: (peer, _r, err) => ev.refused(peer, errorMessage(err)) },
  });
  socket.on('message', (msg, r) => flows.receive(msg, r));
  socket.bind(at.port, at.host);
  await once(socket, 'listening');
  const a = socket.address();
  return {
    address: { host: a.address, port: a.port },
    close: () => {
      flows.close();
      return new Promise((r) => socket.close(() => r()));
    },
  };
}

/**
 * One connection on stdin/stdout (ssh -o ProxyCommand='tunn connect %h'). Resolves when both
 * directions are done; rejects with the reason when the stream was refused or reset.
 */
export async function serveStdio(open: OpenStream, input: Readable, output: Writable): Promise<void> {
  const s = await open();
  const { stream } = s;
  input.pipe(stream);
  stream.pipe(output);
  await new Promise<void>((resolve, reject) => {
    stream.once('close', () => setImmediate(() => (s.wasReset() ? reject(new Error('the connection was reset (the target closed it, or access was revoked)')) : resolve())));
  });
}
