import net from 'node:net';
import type { Server } from 'node:http';
import { TunnError } from '../../lib/errors.ts';

// Where the inspector listens: loopback only. `--inspect` takes a port or host:port; without
// it the first free port from 4040 up on 127.0.0.1 (any free port when those are all taken).

export const DEFAULT_INSPECT_PORT = 4040;
const PORTS_TRIED = 100;

export interface InspectAddress {
  host: string;
  /** undefined: the first free port from 4040. 0: any free port. */
  port?: number;
}

export function parseInspectAddress(spec: string | undefined): InspectAddress {
  if (spec === undefined || spec === '' || spec === 'true') return { host: '127.0.0.1' };
  const bad = (why: string): never => {
    throw new TunnError('INVALID_INPUT', `--inspect ${spec}: ${why}`);
  };
  let host = '127.0.0.1';
  let portText = spec;
  const m = /^(\[[^\]]+\]|[^:]*):(\d+)$/.exec(spec);
  if (m) {
    host = m[1]!.replace(/^\[|\]$/g, '') || '127.0.0.1';
    portText = m[2]!;
  } else if (!/^\d+$/.test(spec)) bad('use a port (4041) or a loopback address and port (127.0.0.1:4041, [::1]:4041)');
  if (host === 'localhost') host = '127.0.0.1';
  const loopback = (net.isIPv4(host) && host.startsWith('127.')) || host === '::1';
  // Captured traffic and replay must not be reachable from the network.
  if (!loopback) bad(`the inspector listens on loopback only (127.0.0.1 or ::1), not ${host}; use --no-inspect to turn it off`);
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) bad('the port must be 0–65535');
  return { host, port };
}

/** Listens on the address, or on the first free port from 4040 when none was given. */
export async function listenOn(server: Server, addr: InspectAddress): Promise<number> {
  if (addr.port !== undefined) {
    try {
      return await tryListen(server, addr.host, addr.port);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new TunnError('UNAVAILABLE', `cannot listen for the inspector on ${addr.host}:${addr.port} (${code ?? (err as Error).message}): pick another with --inspect 127.0.0.1:PORT or turn it off with --no-inspect`);
    }
  }
  for (let p = DEFAULT_INSPECT_PORT; p < DEFAULT_INSPECT_PORT + PORTS_TRIED; p++) {
    try {
      return await tryListen(server, addr.host, p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
  // All taken (many agents on one machine): any free port rather than no inspector.
  return tryListen(server, addr.host, 0);
}

function tryListen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}
