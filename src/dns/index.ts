export { dnsQuery, parseEndpoint, rdata, txtString, type DnsEndpoint, type DnsResponse } from './client.ts';
export { startRelayDns, type RelayDns, type RelayDnsOptions } from './relay-dns.ts';
export type { Dns01Provider } from './dns01-provider.ts';
export { RelayZone, type RelayZoneOptions } from './relay-zone.ts';
export { DnsServer, authoritativeHandler, type DnsHandler, type DnsServerOptions } from './server.ts';
export { requiredRecords, verifyDomainDns, verificationProblems, type DomainVerification, type RecordCheck, type RequiredRecord, type VerifyDnsInput } from './verify.ts';
export { Zone, isInZone, normalizeName, type ZoneAnswer, type ZoneOptions, type ZoneRecord, type ZoneRecordType } from './zone.ts';
