import { isIP } from 'node:net';
import { Zone, normalizeName } from './zone.ts';

// The relay's own zone: the apex and `*.zone` answer with the relay's public address(es), so
// every tunnel name and every customer's `*.their.domain CNAME <zone>` lands on the relay;
// `<acme-id>._acme.<zone>` TXT records are set and removed at run time by the DNS-01 solver.

export interface RelayZoneOptions {
  /** The relay's domain, e.g. `tunn.example.com`. */
  domain: string;
  /** Addresses the zone answers with (IPv4 → A, IPv6 → AAAA). */
  publicIps: string[];
  nameservers?: string[];
}

/**
 * The TXT store a DNS-01 solver writes to. Implementations MUST be safe for concurrent use and
 * MUST keep several values on one name (a wildcard and its apex are validated at once).
 * The relay zone implements it; an RFC 2136 or Cloudflare provider would too.
 */
export interface TxtRecordStore {
  /** The zone the store can write under (challenge names are built beneath it). */
  readonly zone: string;
  setTxt(name: string, value: string): Promise<void>;
  removeTxt(name: string, value: string): Promise<void>;
}

export class RelayZone extends Zone implements TxtRecordStore {
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

  async setTxt(name: string, value: string): Promise<void> {
    this.add({ name: normalizeName(name), type: 'TXT', value, ttl: 0 });
  }

  async removeTxt(name: string, value: string): Promise<void> {
    this.remove(name, 'TXT', value);
  }
}
