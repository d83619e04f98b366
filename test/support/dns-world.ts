import { RelayZone } from '../../src/dns/relay-zone.ts';
import { DnsServer, authoritativeHandler } from '../../src/dns/server.ts';
import { Zone } from '../../src/dns/zone.ts';
import { startForwarder } from './dns-forwarder.ts';

// DNS "as the internet would have it": the relay's zone served by the relay's own DNS
// server, customers' zones by a separate test nameserver, and one recursive resolver (for
// Pebble's -dnsserver and the relay's verifier) that sends each zone to its server.

export interface DnsWorld {
  relayZone: RelayZone;
  relayDns: DnsServer;
  customerDns: DnsServer;
  forwarder: DnsServer;
  /** host:port of the recursive resolver. */
  resolver: string;
  close(): Promise<void>;
}

export async function startDnsWorld(opts: { relayDomain: string; publicIps: string[]; customerZones: Zone[] }): Promise<DnsWorld> {
  const relayZone = new RelayZone({ domain: opts.relayDomain, publicIps: opts.publicIps });
  const relayDns = new DnsServer({ handler: authoritativeHandler([relayZone]), authoritative: true });
  const customerDns = new DnsServer({ handler: authoritativeHandler(opts.customerZones), authoritative: true });
  await relayDns.listen(0);
  await customerDns.listen(0);
  const forwarder = await startForwarder([
    { zone: relayZone.origin, server: { host: '127.0.0.1', port: relayDns.port } },
    ...opts.customerZones.map((z) => ({ zone: z.origin, server: { host: '127.0.0.1', port: customerDns.port } })),
  ]);
  return {
    relayZone,
    relayDns,
    customerDns,
    forwarder,
    resolver: `127.0.0.1:${forwarder.port}`,
    async close() {
      await Promise.all([relayDns.close(), customerDns.close(), forwarder.close()]);
    },
  };
}

/** The customer zone of the seed's example: both CNAMEs of `tunn domain add` in place. */
export function customerZone(origin: string, domain: string, relayDomain: string, acmeId: string): Zone {
  const z = new Zone(origin);
  z.add({ name: `*.${domain}`, type: 'CNAME', value: relayDomain });
  z.add({ name: `_acme-challenge.${domain}`, type: 'CNAME', value: `${acmeId}._acme.${relayDomain}` });
  return z;
}
