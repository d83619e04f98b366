import type { RelayOptions } from '../config/config.ts';
import type { Dns01Provider } from '../dns/dns01-provider.ts';
import { TunnError } from '../lib/errors.ts';
import { printJson } from './output.ts';
import { relayOptionsFrom } from './run-relay.ts';

// The relay's --dns-provider from its options (shared by `tunn relay` and `tunn relay dns
// check`, so both read the same flags, environment and config file), and the check command.

export async function dnsProviderFrom(o: RelayOptions): Promise<Dns01Provider | undefined> {
  if (!o.dnsProvider) return undefined;
  const { createDnsProvider } = await import('../dns/providers/create.ts');
  return createDnsProvider({
    dnsProvider: o.dnsProvider,
    domain: o.domain,
    rfc2136Server: o.rfc2136Server,
    rfc2136Key: o.rfc2136Key,
    cloudflareToken: o.cloudflareToken,
    cloudflareApiUrl: o.cloudflareApiUrl,
    dnsResolver: o.dnsResolver,
  });
}

/** `tunn relay dns check`: writes, waits for and deletes a test TXT record through the provider. */
export async function runDnsCheck(flags: Record<string, unknown>): Promise<void> {
  const o = relayOptionsFrom(flags, process.env);
  const provider = await dnsProviderFrom(o);
  if (!provider) throw new TunnError('CONFIG_INVALID', 'no DNS provider to check: pass --dns-provider rfc2136 (with --rfc2136-server and --rfc2136-key-file) or --dns-provider cloudflare (with --cloudflare-token-file)');
  const { checkDnsProvider } = await import('../dns/providers/check.ts');
  await checkDnsProvider(provider, (s) => {
    if (o.json) printJson({ event: 'dns_check', ...s, ok: true });
    else process.stderr.write(`tunn: ✓ ${s.message}\n`);
  });
  if (o.json) printJson({ event: 'dns_check', step: 'done', ok: true, provider: provider.label });
  else process.stdout.write(`${provider.label} can write and delete DNS-01 records under ${provider.zone}\n`);
}
