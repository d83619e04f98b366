import * as dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { createServer, type Server as TcpServer, type Socket as TcpSocket } from 'node:net';
import type { Logger } from '../lib/logger.ts';
import type { Rcode, Zone, ZoneAnswer } from './zone.ts';

// A DNS server on UDP and TCP (RFC 1035 4.2.2 length prefix) on one port. What it answers
// is a handler: authoritative for a set of zones (the relay), or a forwarding resolver (tests).

export const RCODE: Record<Rcode, number> = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 };

/** Answers one question; an answer with rcode REFUSED for names the server does not serve. */
export type DnsHandler = (q: Question) => Promise<ZoneAnswer> | ZoneAnswer;

export interface DnsServerOptions {
  handler: DnsHandler;
  /** Set the AA flag (authoritative server) rather than RA (resolver). */
  authoritative: boolean;
  logger?: Logger;
}

/** The handler of an authoritative server for `zones`: the most specific zone answers; others are REFUSED. */
export function authoritativeHandler(zones: Zone[] | (() => Zone[])): DnsHandler {
  return (q) => {
    const list = typeof zones === 'function' ? zones() : zones;
    const zone = list.filter((z) => z.contains(q.name)).sort((a, b) => b.origin.length - a.origin.length)[0];
    if (!zone) return { rcode: 'REFUSED', answers: [], authorities: [] };
    return zone.answer(q.name, q.type);
  };
}

const UDP_LIMIT = 512;

export class DnsServer {
  readonly #opts: DnsServerOptions;
  #udp?: Socket;
  #tcp?: TcpServer;
  readonly #conns = new Set<TcpSocket>();
  #port = 0;

  constructor(opts: DnsServerOptions) {
    this.#opts = opts;
  }

  /** The port both transports listen on (after listen()). */
  get port(): number {
    return this.#port;
  }

  /**
   * Listens on UDP and TCP at the same port. Port 0 picks a free port (UDP first, then TCP on
   * the same number, retried a few times if another process holds it on TCP).
   */
  async listen(port = 0, host = '127.0.0.1'): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const udp = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      udp.on('message', (msg, rinfo) => {
        void this.#respond(msg, false).then((out) => {
          if (out) udp.send(out, rinfo.port, rinfo.address);
        });
      });
      udp.bind(port, host);
      await once(udp, 'listening');
      const udpPort = udp.address().port;
      const tcp = createServer((sock) => this.#onTcp(sock));
      try {
        tcp.listen(udpPort, host);
        await once(tcp, 'listening');
      } catch (err) {
        udp.close();
        if (port !== 0 || attempt >= 5) throw err;
        continue;
      }
      this.#udp = udp;
      this.#tcp = tcp;
      this.#port = udpPort;
      return udpPort;
    }
  }

  async close(): Promise<void> {
    for (const c of this.#conns) c.destroy();
    const udp = this.#udp;
    const tcp = this.#tcp;
    this.#udp = undefined;
    this.#tcp = undefined;
    await Promise.all([
      udp && new Promise<void>((r) => udp.close(() => r())),
      tcp && new Promise<void>((r) => tcp.close(() => r())),
    ]);
  }

  #onTcp(sock: TcpSocket): void {
    this.#conns.add(sock);
    sock.on('close', () => this.#conns.delete(sock));
    sock.on('error', () => sock.destroy());
    sock.setTimeout(10_000, () => sock.destroy());
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        void this.#respond(msg, true).then((out) => {
          if (!out || sock.destroyed) return;
          const prefix = Buffer.alloc(2);
          prefix.writeUInt16BE(out.length);
          sock.write(Buffer.concat([prefix, out]));
        });
      }
    });
  }

  #respond(msg: Buffer, tcp: boolean): Promise<Buffer | undefined> {
    return answerPacket(msg, tcp, this.#opts);
  }
}

/**
 * The response to one DNS message as received (UDP datagram or TCP message without its length
 * prefix), or undefined to drop it (not a DNS query). Never rejects: what it cannot answer it
 * drops or answers FORMERR/SERVFAIL.
 */
export async function answerPacket(msg: Buffer, tcp: boolean, opts: DnsServerOptions): Promise<Buffer | undefined> {
  let query: DecodedPacket;
  try {
    query = dnsPacket.decode(msg);
  } catch {
    return undefined; // not DNS: drop, as servers do
  }
  if (query.type !== 'query') return undefined;
  const q = query.questions?.[0];
  const flagsBase = (opts.authoritative ? dnsPacket.AUTHORITATIVE_ANSWER : dnsPacket.RECURSION_AVAILABLE) | (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
  if (!q || query.questions!.length !== 1 || !echoesAsAsked(msg, q)) {
    // Not one question we can echo as it was asked: FORMERR without a question section.
    return dnsPacket.encode({ type: 'response', id: query.id, flags: flagsBase | 1 /* FORMERR */, questions: [] });
  }
  let ans: ZoneAnswer;
  try {
    ans = await opts.handler(q);
  } catch (err) {
    opts.logger?.warn({ err, name: q.name, type: q.type }, 'dns handler failed');
    ans = { rcode: 'SERVFAIL', answers: [], authorities: [] };
  }
  const flags = (ans.rcode === 'REFUSED' ? flagsBase & ~dnsPacket.AUTHORITATIVE_ANSWER : flagsBase) | RCODE[ans.rcode];
  const res: Packet = { type: 'response', id: query.id, flags, questions: [q], answers: ans.answers, authorities: ans.authorities };
  let out = dnsPacket.encode(res);
  if (!tcp && out.length > UDP_LIMIT) {
    // Too big for plain UDP: set TC so the client retries over TCP (RFC 1035 4.2.1).
    out = dnsPacket.encode({ type: 'response', id: query.id, flags: flags | dnsPacket.TRUNCATED_RESPONSE, questions: [q] });
  }
  return out;
}

/**
 * Whether `q`, the first question, is echoed byte for byte as it was asked. dns-packet decodes
 * labels as UTF-8 joined with '.', and its encoder strips dots after a newline, so a name with
 * invalid UTF-8, a dot inside a label or a control character comes back different or malformed.
 */
function echoesAsAsked(msg: Buffer, q: Question): boolean {
  let end = 12; // the question section starts after the header, in the query as in the response
  while (end < msg.length && msg[end] !== 0) {
    if (msg[end]! > 63) return false; // a compression pointer: not how a question is written
    end += 1 + msg[end]!;
  }
  end += 1;
  const echoed = dnsPacket.encode({ type: 'response', id: 0, questions: [q] });
  return end <= msg.length && echoed.subarray(12, end).equals(msg.subarray(12, end));
}

export type { Answer };
