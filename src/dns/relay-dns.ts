import type { Logger } from '../lib/logger.ts';
import { RelayZone } from './relay-zone.ts';
import { DnsServer, authoritativeHandler } from './server.ts';

// The relay's DNS in one call: its zone plus a UDP+TCP server answering for it.

export interface RelayDnsOptions {
  domain: string;
  publicIps: string[];
  /** `--dns-port` (0 = a free port, reported as `port`). */
  port: number;
  host?: string;
  logger?: Logger;
}

export interface RelayDns {
  zone: RelayZone;
  server: DnsServer;
  /** The port listened on (report it as `dnsPort` in the ready event). */
  port: number;
  close(): Promise<void>;
}

export async function startRelayDns(opts: RelayDnsOptions): Promise<RelayDns> {
  const zone = new RelayZone({ domain: opts.domain, publicIps: opts.publicIps });
  const server = new DnsServer({ handler: authoritativeHandler([zone]), authoritative: true, logger: opts.logger });
  const port = await server.listen(opts.port, opts.host ?? '0.0.0.0');
  return { zone, server, port, close: () => server.close() };
}
