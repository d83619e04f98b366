export { checkDnsProvider, type CheckStep } from './check.ts';
export { CLOUDFLARE_API, CloudflareProvider, type CloudflareOptions } from './cloudflare.ts';
export { createDnsProvider, type DnsProviderSettings } from './create.ts';
export { Rfc2136Provider, type Rfc2136Options } from './rfc2136.ts';
export { parseTsigKey, type TsigKey } from './tsig.ts';
export { waitForTxt, type WaitOptions } from './wait-visible.ts';
