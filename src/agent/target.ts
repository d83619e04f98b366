import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';

// The local service a tunnel forwards to: `8080`, `host:8080`, `http://host:8080`, `https://host:8443`.

export interface Target {
  protocol: 'http' | 'https';
  host: string;
  port: number;
  /** For messages: "http://localhost:8080". */
  display: string;
}

export function parseTarget(spec: string): Target {
  const s = spec.trim();
  const bad = (): never => {
    throw new TunnError('INVALID_INPUT', `"${spec}" is not a target: use a port (8080), host:port (localhost:8080) or a URL (http://localhost:8080)`);
  };
  let protocol: 'http' | 'https' = 'http';
  let host = 'localhost';
  let portText: string;
  if (/^\d+$/.test(s)) {
    portText = s;
  } else if (/^https?:\/\//i.test(s)) {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      return bad();
    }
    protocol = u.protocol === 'https:' ? 'https' : 'http';
    host = u.hostname.replace(/^\[|\]$/g, '');
    portText = u.port || (protocol === 'https' ? '443' : '80');
    if (u.pathname !== '/' || u.search) {
      throw new TunnError('INVALID_INPUT', `"${spec}": a target is a host and port; paths are not supported (drop "${u.pathname}${u.search}")`);
    }
  } else {
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(s);
    if (!m) return bad();
    host = m[1]!.replace(/^\[|\]$/g, '');
    portText = m[2]!;
  }
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new TunnError('INVALID_INPUT', `"${spec}": port must be between 1 and 65535`);
  }
  const hostDisplay = host.includes(':') ? `[${host}]` : host;
  return { protocol, host, port, display: `${protocol}://${hostDisplay}:${port}` };
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * dns.lookup that resolves `localhost` and `*.localhost` to loopback itself (RFC 6761; Node's
 * resolver, through glibc, does not), and everything else as usual.
 */
export function localhostAwareLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  const h = normalizeHost(hostname);
  if (h === 'localhost' || h.endsWith('.localhost')) {
    const family = options.family === 6 ? 6 : 4;
    const address = family === 6 ? '::1' : '127.0.0.1';
    if (options.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
    return;
  }
  dnsLookup(hostname, options, callback as never);
}
