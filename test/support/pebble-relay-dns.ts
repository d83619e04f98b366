import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DnsServer, authoritativeHandler } from '../../src/dns/server.ts';
import type { Zone } from '../../src/dns/zone.ts';
import { startForwarder, type ZoneRoute } from './dns-forwarder.ts';
import { startPebble, type Pebble } from './pebble.ts';
import { freePort } from './ports.ts';

// Pebble for a relay started as a process: the customer's zone on a test nameserver, the
// relay's zone routed to the DNS port the relay will listen on, one forwarder for Pebble and
// the relay's verifier, and Pebble's CA files written where `--acme-ca` can read them.

export interface PebbleRelayDns {
  customerDns: DnsServer;
  forwarder: DnsServer;
  pebble: Pebble;
  /** The port to give the relay as `--dns-port` (the forwarder already routes its zone there). */
  dnsPort: number;
  httpsPort: number;
  httpPort: number;
  /** Pebble's HTTPS CA (for `--acme-ca`). */
  httpsCaFile: string;
  /** Pebble's issuing root (what clients of the relay trust). */
  rootFile: string;
}

/** `routes` stays the caller's: tests add zones to it later and the forwarder reads it per query. */
export async function startPebbleRelayDns(opts: { relayDomain: string; customer: Zone; routes: ZoneRoute[]; dir: string }): Promise<PebbleRelayDns> {
  const customerDns = new DnsServer({ handler: authoritativeHandler([opts.customer]), authoritative: true });
  await customerDns.listen(0, '127.0.0.1');
  const dnsPort = await freePort();
  opts.routes.push({ zone: opts.relayDomain, server: { host: '127.0.0.1', port: dnsPort } }, { zone: opts.customer.origin, server: { host: '127.0.0.1', port: customerDns.port } });
  const forwarder = await startForwarder(() => opts.routes);
  const [httpsPort, httpPort] = [await freePort(), await freePort()];
  const pebble = await startPebble({ dnsServer: `127.0.0.1:${forwarder.port}`, httpPort, tlsPort: httpsPort });
  const httpsCaFile = join(opts.dir, 'pebble-https-ca.pem');
  writeFileSync(httpsCaFile, pebble.httpsCaPem);
  const rootFile = join(opts.dir, 'pebble-root.pem');
  writeFileSync(rootFile, pebble.rootPem);
  return { customerDns, forwarder, pebble, dnsPort, httpsPort, httpPort, httpsCaFile, rootFile };
}
