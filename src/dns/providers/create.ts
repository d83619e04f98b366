import { parseEndpoint } from '../client.ts';
import type { Dns01Provider } from '../dns01-provider.ts';
import type { WaitOptions } from './wait-visible.ts';

// The one place that turns the relay's settings into a DNS-01 provider. Each provider module is
// loaded only when configured (a relay without one carries none of this code).

export interface DnsProviderSettings {
  dnsProvider: 'rfc2136' | 'cloudflare';
  /** The relay's domain: challenge names are built beneath it. */
  domain: string;
  rfc2136Server?: string;
  rfc2136Key?: string;
  cloudflareToken?: string;
  cloudflareApiUrl?: string;
  /** `--dns-resolver host:port`: where Cloudflare's records are checked for visibility (default: the zone's nameservers). */
  dnsResolver?: string;
  wait?: WaitOptions;
}

export async function createDnsProvider(s: DnsProviderSettings): Promise<Dns01Provider> {
  if (s.dnsProvider === 'rfc2136') {
    const [{ Rfc2136Provider }, { parseTsigKey }] = await Promise.all([import('./rfc2136.ts'), import('./tsig.ts')]);
    const key = parseTsigKey(s.rfc2136Key ?? '', '--rfc2136-key-file (or TUNN_RFC2136_KEY)');
    return new Rfc2136Provider({ zone: s.domain, server: parseEndpoint(s.rfc2136Server ?? ''), key, wait: s.wait });
  }
  const { CloudflareProvider } = await import('./cloudflare.ts');
  return new CloudflareProvider({ zone: s.domain, token: s.cloudflareToken ?? '', apiUrl: s.cloudflareApiUrl, resolver: s.dnsResolver ? parseEndpoint(s.dnsResolver) : undefined, wait: s.wait });
}
