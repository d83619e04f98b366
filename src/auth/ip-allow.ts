import { BlockList, isIP } from 'node:net';
import { TunnError } from '../lib/errors.ts';

// `--allow-ip CIDR` (repeatable): the tunnel answers only clients whose address matches one
// entry. IPv4 and IPv6; a client that reaches a dual-stack listener over IPv4 shows up as an
// IPv4-mapped IPv6 address (::ffff:203.0.113.7) and is matched as the IPv4 address it is.

export interface IpAllowList {
  /** The entries as given, normalised. */
  readonly entries: readonly string[];
  allows(clientIp: string): boolean;
}

/** Strips an IPv4-mapped IPv6 prefix and a zone id; undefined when `ip` is not an address. */
export function normaliseIp(ip: string): { address: string; family: 'ipv4' | 'ipv6' } | undefined {
  let a = ip.trim();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const pct = a.indexOf('%');
  if (pct >= 0) a = a.slice(0, pct);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped) a = mapped[1]!;
  const v = isIP(a);
  if (v === 4) return { address: a, family: 'ipv4' };
  if (v === 6) return { address: a.toLowerCase(), family: 'ipv6' };
  return undefined;
}

/** Parses CIDRs or single addresses; throws INVALID_INPUT naming every bad entry. */
export function parseIpAllowList(raw: readonly string[]): IpAllowList {
  const list = new BlockList();
  const bad: string[] = [];
  const entries: string[] = [];
  for (const r of raw) {
    const [addr, prefix, ...rest] = r.trim().split('/');
    const n = addr === undefined ? undefined : normaliseIp(addr);
    const max = n?.family === 'ipv4' ? 32 : 128;
    const bits = prefix === undefined ? max : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
    if (!n || rest.length || !(bits >= 0 && bits <= max)) {
      bad.push(r);
      continue;
    }
    list.addSubnet(n.address, bits, n.family);
    entries.push(`${n.address}/${bits}`);
  }
  if (bad.length) {
    throw new TunnError('INVALID_INPUT', `--allow-ip: not an IP address or CIDR: ${bad.map((b) => `"${b}"`).join(', ')} (examples: 203.0.113.0/24, 2001:db8::/32, 192.0.2.7)`);
  }
  return {
    entries,
    allows(clientIp: string): boolean {
      const n = normaliseIp(clientIp);
      return n !== undefined && list.check(n.address, n.family);
    },
  };
}
