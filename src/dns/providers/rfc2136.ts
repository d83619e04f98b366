import { randomInt } from 'node:crypto';
import { connect } from 'node:net';
import { dnsQuery, formatEndpoint as endpoint, type DnsEndpoint } from '../client.ts';
import type { Dns01Provider } from '../dns01-provider.ts';
import { systemClock, type Clock } from '../../lib/clock.ts';
import { errorMessage, TunnError } from '../../lib/errors.ts';
import { normalizeHost } from '../../lib/host.ts';
import { signMessage, TSIG_ERRORS, verifyResponse, type TsigKey } from './tsig.ts';
import { encodeTxtUpdate, parseAnswer, RCODES, type UpdateRecord } from './wire.ts';
import { waitForTxt, type WaitOptions } from './wait-visible.ts';

// DNS-01 through RFC 2136 dynamic updates signed with TSIG (RFC 8945): BIND, Knot, PowerDNS,
// Windows DNS. Updates go over TCP (no truncation, no retransmitted duplicates). The zone that
// holds a name is asked of the server itself (its SOA), and "visible" means the server answers
// the TXT value: NS records carry no port, so the server the operator named is the one asked.

export interface Rfc2136Options {
  /** The relay's zone (challenge names are built beneath it). */
  zone: string;
  server: DnsEndpoint;
  key: TsigKey;
  /** TTL of the TXT records written (default 60 s). */
  ttl?: number;
  /** How long to wait for an answer (default 10 s). */
  timeoutMs?: number;
  wait?: WaitOptions;
  /** Signing time (TSIG carries it; the server allows 300 s either way). */
  clock?: Clock;
}

const KEY_FILE = '--rfc2136-key-file';

export class Rfc2136Provider implements Dns01Provider {
  readonly zone: string;
  readonly label: string;
  readonly #o: Rfc2136Options;
  readonly #zones = new Map<string, Promise<string>>();

  constructor(opts: Rfc2136Options) {
    this.#o = opts;
    this.zone = normalizeHost(opts.zone);
    this.label = `RFC 2136 server ${endpoint(opts.server)}`;
  }

  async present(name: string, value: string): Promise<void> {
    await this.#update(name, { op: 'add', name, value, ttl: this.#o.ttl ?? 60 }, 'adding');
  }

  /** Deletes only this value (class NONE, RFC 2136 §2.5.4): the apex and its wildcard share a name. */
  async cleanup(name: string, value: string): Promise<void> {
    await this.#update(name, { op: 'delete', name, value }, 'deleting');
  }

  async waitVisible(name: string, value: string): Promise<void> {
    await waitForTxt([this.#o.server], name, value, this.#o.wait);
  }

  /** The zone holding `name` on the server: the owner of the SOA in its answer (or authority section). */
  async zoneOf(name: string): Promise<string> {
    const n = normalizeHost(name);
    let p = this.#zones.get(n);
    if (!p) {
      p = this.#findZone(n);
      this.#zones.set(n, p);
      p.catch(() => this.#zones.delete(n));
    }
    return p;
  }

  async #findZone(name: string): Promise<string> {
    let r;
    try {
      r = await dnsQuery(this.#o.server, name, 'SOA', { tcp: true, timeoutMs: this.#o.timeoutMs ?? 10_000 });
    } catch (err) {
      throw this.#unreachable(err);
    }
    const soa = [...(r.answers ?? []), ...(r.authorities ?? [])].find((a) => a.type === 'SOA');
    if ((r.rcode === 'NOERROR' || r.rcode === 'NXDOMAIN') && soa) return normalizeHost(soa.name);
    throw new TunnError('UNAVAILABLE', `the ${this.label} is not authoritative for ${name} (asked for its SOA, it answered ${r.rcode}): add the zone holding ${name} to that server, or point --rfc2136-server at the zone's primary`);
  }

  async #update(name: string, record: UpdateRecord, doing: string): Promise<void> {
    const zone = await this.zoneOf(name);
    const what = `${doing} TXT ${name} in zone ${zone} through the ${this.label}`;
    const id = randomInt(65536);
    const { signed, mac } = signMessage(this.#o.key, encodeTxtUpdate(id, zone, [record]), this.#now());
    let raw: Buffer;
    try {
      raw = await exchangeTcp(this.#o.server, signed, this.#o.timeoutMs ?? 10_000);
    } catch (err) {
      throw this.#unreachable(err, what);
    }
    const answer = parseAnswer(raw);
    if (answer.id !== id || answer.opcode !== 5) throw new TunnError('PROTOCOL_ERROR', `${what}: the answer is not to this update (id or opcode differ)`);
    const key = this.#o.key.name;
    const tsigError = answer.tsig?.error ? (TSIG_ERRORS[answer.tsig.error] ?? `TSIG error ${answer.tsig.error}`) : undefined;
    if (tsigError === 'BADKEY') throw new TunnError('FORBIDDEN', `${what}: the server does not know TSIG key "${key}" (BADKEY): the key name in ${KEY_FILE} must match a key in the server's configuration`);
    if (tsigError === 'BADSIG') throw new TunnError('FORBIDDEN', `${what}: the server refused the signature of TSIG key "${key}" (BADSIG): the secret in ${KEY_FILE} is not the server's secret for that key`);
    if (tsigError === 'BADTIME') throw new TunnError('FORBIDDEN', `${what}: the server refused the time of the signature (BADTIME): this machine's clock and the server's differ by more than 300 s; fix them (NTP)`);
    if (tsigError) throw new TunnError('FORBIDDEN', `${what}: the server refused the TSIG signature (${tsigError})`);
    // Security: a signed update's answer must be signed with the same key, or it proves nothing
    // (anyone on the path could have forged a NOERROR).
    if (!answer.tsig) throw new TunnError('PROTOCOL_ERROR', `${what}: the answer (${RCODES[answer.rcode] ?? answer.rcode}) is not signed, so it cannot be believed`);
    const check = verifyResponse(this.#o.key, answer.tsig, mac, this.#now());
    if (!check.ok) throw new TunnError('PROTOCOL_ERROR', `${what}: ${check.why}, so it cannot be believed`);
    const rcode = RCODES[answer.rcode] ?? `RCODE ${answer.rcode}`;
    if (rcode === 'NOERROR') return;
    if (rcode === 'REFUSED') throw new TunnError('FORBIDDEN', `${what}: the server refused it (REFUSED): TSIG key "${key}" may not write TXT records there; allow it, e.g. in BIND: update-policy { grant ${key} zonesub TXT; };`);
    if (rcode === 'NOTAUTH') throw new TunnError('FORBIDDEN', `${what}: the server is not authoritative for ${zone} (NOTAUTH): point --rfc2136-server at the zone's primary`);
    if (rcode === 'NOTZONE') throw new TunnError('FORBIDDEN', `${what}: ${name} is not inside zone ${zone} (NOTZONE)`);
    throw new TunnError('UNAVAILABLE', `${what}: the server answered ${rcode}`);
  }

  #now(): number {
    return Math.floor((this.#o.clock ?? systemClock).now() / 1000);
  }

  #unreachable(err: unknown, what = `asking the ${this.label} which zone holds the records`): TunnError {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ECONNREFUSED' ? 'connection refused (is the server running, and does it accept TCP on that port?)' : code === 'EHOSTUNREACH' || code === 'ENETUNREACH' ? 'no route to it' : errorMessage(err);
    return new TunnError('UNAVAILABLE', `${what}: cannot reach the server: ${why}`, { cause: err });
  }
}

/** Sends one DNS message over TCP (RFC 1035 §4.2.2 length prefix) and returns the one answer. */
function exchangeTcp(server: DnsEndpoint, message: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect(server.port, server.host);
    sock.setTimeout(timeoutMs, () => sock.destroy(new TunnError('UNAVAILABLE', `no answer within ${Math.round(timeoutMs / 1000)} s`)));
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16BE(message.length);
    sock.write(Buffer.concat([prefix, message]));
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        sock.end();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new TunnError('UNAVAILABLE', 'the server closed the connection without an answer')));
  });
}
