import type { Answer } from 'dns-packet';
import { dnsQuery, rdata, type DnsEndpoint } from '../../src/dns/client.ts';
import { DnsServer, type DnsHandler } from '../../src/dns/server.ts';
import { isInZone, normalizeName, type Rcode } from '../../src/dns/zone.ts';

// "The internet" for tests: one recursive resolver that sends each zone to its own
// nameserver and, like a real recursor, follows a CNAME into another zone and returns the
// whole chain in one answer. Pebble (-dnsserver) and the relay's verifier both use it.

export interface ZoneRoute {
  zone: string;
  server: DnsEndpoint;
}

export function forwardingHandler(routes: ZoneRoute[] | (() => ZoneRoute[])): DnsHandler {
  const pick = (name: string) =>
    (typeof routes === 'function' ? routes() : routes)
      .filter((r) => isInZone(name, r.zone))
      .sort((a, b) => b.zone.length - a.zone.length)[0];
  return async (q) => {
    const answers: Answer[] = [];
    let name = normalizeName(q.name);
    for (let hop = 0; hop < 8; hop++) {
      const route = pick(name);
      if (!route) return { rcode: answers.length ? 'NOERROR' : 'NXDOMAIN', answers, authorities: [] };
      const res = await dnsQuery(route.server, name, q.type);
      answers.push(...(res.answers ?? []));
      if (res.rcode !== 'NOERROR') return { rcode: res.rcode as Rcode, answers, authorities: res.authorities ?? [] };
      if (q.type === 'CNAME' || res.answers?.some((a) => a.type === q.type)) return { rcode: 'NOERROR', answers, authorities: [] };
      const last = res.answers?.filter((a) => a.type === 'CNAME').at(-1);
      if (!last) return { rcode: 'NOERROR', answers, authorities: res.authorities ?? [] };
      name = normalizeName(rdata(last) as string);
    }
    return { rcode: 'SERVFAIL', answers: [], authorities: [] };
  };
}

/** Starts the forwarding resolver on a free port. */
export async function startForwarder(routes: ZoneRoute[] | (() => ZoneRoute[])): Promise<DnsServer> {
  const server = new DnsServer({ handler: forwardingHandler(routes), authoritative: false });
  await server.listen(0);
  return server;
}
