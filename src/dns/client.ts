import * as dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, RecordType } from 'dns-packet';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { randomInt } from 'node:crypto';
import { TunnError } from '../lib/errors.ts';

// A one-question DNS client (UDP, or TCP when asked or when the UDP answer is truncated).
// Used by the forwarding resolver in tests and to inspect the relay's own server.

export interface DnsEndpoint {
  host: string;
  port: number;
}

export interface DnsResponse extends DecodedPacket {
  /** dns-packet decodes the response code to its name ('NOERROR', 'NXDOMAIN', ...). */
  rcode: string;
}

/** `host:port`, with brackets around an IPv6 address. */
export function formatEndpoint(s: DnsEndpoint): string {
  return s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

/** Parses `host:port` (or `[v6]:port`, or a bare host with port 53). */
export function parseEndpoint(s: string): DnsEndpoint {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+)(?::(\d+))?$/.exec(s);
  if (!m) throw new TunnError('CONFIG_INVALID', `"${s}" is not a DNS server address; use host:port, e.g. 127.0.0.1:53`);
  return { host: m[1]!, port: m[2] ? Number(m[2]) : 53 };
}

export async function dnsQuery(server: DnsEndpoint, name: string, type: RecordType, opts: { tcp?: boolean; timeoutMs?: number } = {}): Promise<DnsResponse> {
  const id = randomInt(65536);
  const query = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
  const timeoutMs = opts.timeoutMs ?? 2000;
  if (!opts.tcp) {
    const res = await udpExchange(server, query, id, timeoutMs);
    if (!res.flag_tc) return res;
  }
  return tcpExchange(server, query, timeoutMs);
}

function udpExchange(server: DnsEndpoint, query: Buffer, id: number, timeoutMs: number): Promise<DnsResponse> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(server.host.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => finish(new TunnError('UNAVAILABLE', `DNS query to ${server.host}:${server.port} timed out`)), timeoutMs);
    const finish = (err?: Error, res?: DnsResponse) => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(res!);
    };
    sock.on('error', (err) => finish(err));
    sock.on('message', (msg) => {
      try {
        const res = dnsPacket.decode(msg) as DnsResponse;
        if (res.id === id) finish(undefined, res);
      } catch {
        /* ignore garbage */
      }
    });
    sock.send(query, server.port, server.host);
  });
}

function tcpExchange(server: DnsEndpoint, query: Buffer, timeoutMs: number): Promise<DnsResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(server.port, server.host);
    sock.setTimeout(timeoutMs, () => sock.destroy(new TunnError('UNAVAILABLE', `DNS query to ${server.host}:${server.port} (TCP) timed out`)));
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16BE(query.length);
    sock.write(Buffer.concat([prefix, query]));
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        sock.end();
        try {
          resolve(dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))) as DnsResponse);
        } catch (err) {
          reject(err);
        }
      }
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new TunnError('UNAVAILABLE', `DNS server ${server.host}:${server.port} closed the TCP connection without an answer`)));
  });
}

/** The data of an answer record (dns-packet's OPT records have none). */
export function rdata(a: Answer): unknown {
  return 'data' in a ? a.data : undefined;
}

/** TXT strings of an answer record, joined per record. */
export function txtString(a: Answer): string {
  const d = rdata(a);
  const parts = Array.isArray(d) ? d : [d];
  return parts.map((p) => (Buffer.isBuffer(p) ? p.toString('utf8') : String(p))).join('');
}
