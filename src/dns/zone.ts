import type { Answer, RecordType, SoaData } from 'dns-packet';
import { normalizeHost } from '../lib/host.ts';

// An authoritative zone held in memory: records by owner name, RFC 4592 wildcards, CNAME
// chasing inside the zone, SOA/NS at the apex. The relay builds one for its own domain
// (relay-zone.ts); tests build static ones for "the customer's nameserver".

export type ZoneRecordType = 'A' | 'AAAA' | 'TXT' | 'CNAME' | 'NS' | 'SOA';

export interface ZoneRecord {
  /** Owner name, lower case, no trailing dot; may start with `*.` for a wildcard. */
  name: string;
  type: ZoneRecordType;
  /** A/AAAA: address; CNAME/NS: target name; TXT: the string; SOA: unused (built from options). */
  value: string;
  ttl?: number;
}

export type Rcode = 'NOERROR' | 'NXDOMAIN' | 'REFUSED' | 'SERVFAIL';

export interface ZoneAnswer {
  rcode: Rcode;
  answers: Answer[];
  authorities: Answer[];
}

export interface ZoneOptions {
  /** Nameserver names for the apex NS records (default `ns1.<origin>`). */
  nameservers?: string[];
  /** SOA responsible-person mailbox in DNS form (default `hostmaster.<origin>`). */
  hostmaster?: string;
  /** TTL of static records (default 60 s); TXT challenge records use 0 so nothing caches them. */
  ttl?: number;
}

export function normalizeName(name: string): string {
  return normalizeHost(name);
}

/** True when `name` is `zone` or a name under it. */
export function isInZone(name: string, zone: string): boolean {
  const n = normalizeName(name);
  const z = normalizeName(zone);
  return n === z || n.endsWith('.' + z);
}

const MAX_CHASE = 8;

export class Zone {
  readonly origin: string;
  readonly #records = new Map<string, ZoneRecord[]>();
  readonly #ttl: number;
  readonly #soaData: SoaData;
  readonly #ns: string[];
  #serial = 1;

  constructor(origin: string, opts: ZoneOptions = {}) {
    this.origin = normalizeName(origin);
    this.#ttl = opts.ttl ?? 60;
    this.#ns = (opts.nameservers ?? [`ns1.${this.origin}`]).map(normalizeName);
    this.#soaData = { mname: this.#ns[0]!, rname: opts.hostmaster ?? `hostmaster.${this.origin}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 0 };
  }

  contains(name: string): boolean {
    return isInZone(name, this.origin);
  }

  add(rec: ZoneRecord): void {
    const name = normalizeName(rec.name);
    if (!this.contains(name)) throw new TypeError(`record ${name} is outside the zone ${this.origin}`);
    const list = this.#records.get(name) ?? [];
    if (!list.some((r) => r.type === rec.type && r.value === rec.value)) list.push({ ...rec, name });
    this.#records.set(name, list);
    this.#serial++;
  }

  /** Removes one record (type + value), or every record of `type` at `name` when value is omitted. */
  remove(name: string, type: ZoneRecordType, value?: string): void {
    const n = normalizeName(name);
    const list = (this.#records.get(n) ?? []).filter((r) => !(r.type === type && (value === undefined || r.value === value)));
    if (list.length) this.#records.set(n, list);
    else this.#records.delete(n);
    this.#serial++;
  }

  records(name: string): ZoneRecord[] {
    return [...(this.#records.get(normalizeName(name)) ?? [])];
  }

  /** A node exists when it owns records or has descendants (an empty non-terminal). */
  #exists(name: string): boolean {
    if (name === this.origin || this.#records.has(name)) return true;
    const suffix = '.' + name;
    for (const k of this.#records.keys()) if (k.endsWith(suffix)) return true;
    return false;
  }

  /** Records at `name`, synthesised from the closest encloser's wildcard when the name does not exist (RFC 4592). */
  #lookup(name: string): ZoneRecord[] | undefined {
    if (this.#exists(name)) return this.#records.get(name) ?? [];
    let encloser = name;
    while (encloser !== this.origin) {
      encloser = encloser.slice(encloser.indexOf('.') + 1);
      if (this.#exists(encloser)) break;
    }
    const wild = this.#records.get('*.' + encloser);
    return wild?.map((r) => ({ ...r, name }));
  }

  get #soa(): Answer {
    return { type: 'SOA', name: this.origin, ttl: this.#ttl, data: { ...this.#soaData, serial: this.#serial } };
  }

  #toAnswer(r: ZoneRecord): Answer {
    const ttl = r.ttl ?? (r.type === 'TXT' ? 0 : this.#ttl);
    return { type: r.type as 'A', name: r.name, ttl, data: r.value };
  }

  #apexRecords(type: RecordType): Answer[] {
    if (type === 'SOA') return [this.#soa];
    if (type === 'NS') return this.#ns.map((ns) => ({ type: 'NS', name: this.origin, ttl: this.#ttl, data: ns }));
    return [];
  }

  /**
   * The authoritative answer for one question. A CNAME is followed inside the zone and the
   * target's records are returned in the same answer (validators such as Pebble's do not
   * chase CNAMEs themselves); a target outside the zone is left for the resolver.
   */
  answer(qname: string, qtype: RecordType): ZoneAnswer {
    let name = normalizeName(qname);
    if (!this.contains(name)) return { rcode: 'REFUSED', answers: [], authorities: [] };
    const answers: Answer[] = [];
    for (let hop = 0; hop < MAX_CHASE; hop++) {
      const recs = this.#lookup(name);
      if (recs === undefined) {
        // The first name does not exist → NXDOMAIN; a dangling in-zone CNAME target likewise.
        return { rcode: 'NXDOMAIN', answers, authorities: [this.#soa] };
      }
      const direct = recs.filter((r) => r.type === qtype).map((r) => this.#toAnswer(r));
      if (name === this.origin) direct.push(...this.#apexRecords(qtype));
      if (direct.length || qtype === 'CNAME') {
        answers.push(...direct);
        return { rcode: 'NOERROR', answers, authorities: direct.length ? [] : [this.#soa] };
      }
      const cname = recs.find((r) => r.type === 'CNAME');
      if (!cname) return { rcode: 'NOERROR', answers, authorities: [this.#soa] };
      answers.push(this.#toAnswer(cname));
      name = normalizeName(cname.value);
      if (!this.contains(name)) return { rcode: 'NOERROR', answers, authorities: [] };
    }
    return { rcode: 'SERVFAIL', answers: [], authorities: [] };
  }
}
