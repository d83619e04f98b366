import { lookup } from 'node:dns/promises';
import net from 'node:net';

// Where the agent's sessions go when a cluster has several relays: `--relay` may be a comma
// list, and each name is resolved to every address it has (DNS round-robin over the relays).
// Each session picks an endpoint no other session of the agent uses while one is free, so an
// agent with two sessions keeps them on two different relays; a session that fails moves on
// to the next endpoint, so losing a relay loses no tunnel.

export interface RelayEndpoint {
  url: URL;
  /** The URL's host name (no brackets): the TLS server name and what certificates are checked against. */
  host: string;
  port: number;
  /** The address dialled; undefined: the name as is (it did not resolve here; the dial says why). */
  address: string | undefined;
  /** Tells endpoints apart (address and port). */
  key: string;
}

/** The relays of `--relay`: one URL, or a comma-separated list of them. */
export function parseRelayList(value: string): URL[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => new URL(s));
}

/** Every address of `host` (`*.localhost` is loopback, as in browsers and curl). */
export async function lookupAll(host: string): Promise<string[]> {
  if (host === 'localhost' || host.endsWith('.localhost')) return ['127.0.0.1'];
  return (await lookup(host, { all: true })).map((a) => a.address);
}

/** The endpoints of `urls`, each name resolved to all its addresses, without duplicates. */
export async function resolveEndpoints(urls: readonly URL[], resolve: (host: string) => Promise<string[]> = lookupAll): Promise<RelayEndpoint[]> {
  const out = new Map<string, RelayEndpoint>();
  for (const url of urls) {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || 443);
    let addresses: (string | undefined)[] = [undefined];
    if (!net.isIP(host)) {
      const found = await resolve(host).catch(() => []);
      if (found.length) addresses = found;
    } else addresses = [host];
    for (const address of addresses) {
      const key = `${address ?? host}|${port}`;
      if (!out.has(key)) out.set(key, { url, host, port, address, key });
    }
  }
  return [...out.values()];
}

/**
 * The endpoint for session `index` on its `attempt`th try: from its own starting place,
 * moving on one per failed attempt, the first one no other session uses (`inUse`), else
 * that starting one.
 */
export function pickEndpoint(endpoints: readonly RelayEndpoint[], index: number, attempt: number, inUse: readonly string[]): RelayEndpoint {
  if (!endpoints.length) throw new TypeError('pickEndpoint needs at least one endpoint');
  const n = endpoints.length;
  const start = (index + attempt) % n;
  for (let k = 0; k < n; k++) {
    const e = endpoints[(start + k) % n]!;
    if (!inUse.includes(e.key)) return e;
  }
  return endpoints[start]!;
}
