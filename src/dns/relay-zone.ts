import { isIP } from 'node:net';
import type { Dns01Provider } from './dns01-provider.ts';
import { Zone, normalizeName } from './zone.ts';

// The relay's own zone: the apex and `*.zone` answer with the relay's public address(es), so
// every tunnel name and every customer's `*.their.domain CNAME <zone>` lands on the relay;
// `<acme-id>._acme.<zone>` TXT records are set and removed at run time by the DNS-01 solver
// (one Dns01Provider; the others write to an operator's DNS instead).

export interface RelayZoneOptions {
  /** The relay's domain, e.g. `tunn.example.com`. */
  domain: string;
  /** Addresses the zone answers with (IPv4 → A, IPv6 → AAAA). */
  publicIps: string[];
  nameservers?: string[];
}

export class RelayZone extends Zone implements Dns01Provider {
  readonly label = "the relay's DNS server";

  get zone(): string {
    return this.origin;
  }

  constructor(opts: RelayZoneOptions) {
    super(opts.domain, { nameservers: opts.nameservers });
    for (const ip of opts.publicIps) {
      const type = isIP(ip) === 6 ? 'AAAA' : isIP(ip) === 4 ? 'A' : undefined;
      if (!type) throw new TypeError(`public IP "${ip}" is not an IP address`);
      this.add({ name: this.origin, type, value: ip });
      this.add({ name: `*.${this.origin}`, type, value: ip });
    }
  }

  /** `<acme-id>._acme.<zone>`: where a customer's `_acme-challenge` CNAME points. */
  acmeName(acmeId: string): string {
    return `${acmeId.toLowerCase()}._acme.${this.origin}`;
  }

  async present(name: string, value: string): Promise<void> {
    this.add({ name: normalizeName(name), type: 'TXT', value, ttl: 0 });
  }

  async cleanup(name: string, value: string): Promise<void> {
    this.remove(name, 'TXT', value);
  }

  /** The zone answers from memory: a record is visible once present() returns. */
  async waitVisible(): Promise<void> {}
}
