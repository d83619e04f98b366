import { Resolver } from 'node:dns/promises';
import { randomBytes } from 'node:crypto';
import { normalizeName } from './zone.ts';

// Verification of a customer's DNS records (`tunn domain add|verify`): the two CNAMEs of
// seed 002, and in strict mode a TXT token. Each record's result names what was expected and
// what was found instead, so the CLI can say exactly what to fix.

export interface RequiredRecord {
  name: string;
  type: 'CNAME' | 'TXT';
  value: string;
  purpose: string;
}

export interface RecordCheck extends RequiredRecord {
  ok: boolean;
  /** What DNS answered, as "TYPE value" strings; empty when there is no record. */
  found: string[];
  /** One sentence for the user when not ok. */
  problem?: string;
}

export interface DomainVerification {
  domain: string;
  ok: boolean;
  records: RecordCheck[];
}

export interface VerifyDnsInput {
  domain: string;
  acmeId: string;
  relayDomain: string;
  /** Strict mode: also require `_tunn-verify.<domain> TXT <token>`. */
  strict?: boolean;
  verificationToken?: string;
  /** `host:port` of the resolver to ask (`--dns-resolver`); the system's when omitted. */
  resolver?: string;
  timeoutMs?: number;
}

/** The records a customer must create, in the order `tunn domain add` prints them. */
export function requiredRecords(input: Pick<VerifyDnsInput, 'domain' | 'acmeId' | 'relayDomain' | 'strict' | 'verificationToken'>): RequiredRecord[] {
  const d = normalizeName(input.domain);
  const r = normalizeName(input.relayDomain);
  const out: RequiredRecord[] = [
    { name: `*.${d}`, type: 'CNAME', value: r, purpose: 'routes every tunnel name under the domain to the relay' },
    { name: `_acme-challenge.${d}`, type: 'CNAME', value: `${input.acmeId.toLowerCase()}._acme.${r}`, purpose: 'lets the relay answer DNS-01 challenges for the wildcard certificate' },
  ];
  if (input.strict) {
    if (!input.verificationToken) throw new TypeError('strict verification needs the domain verification token');
    out.push({ name: `_tunn-verify.${d}`, type: 'TXT', value: input.verificationToken, purpose: 'proves ownership (the relay runs in strict mode)' });
  }
  return out;
}

function makeResolver(input: VerifyDnsInput): Resolver {
  const r = new Resolver({ timeout: input.timeoutMs ?? 3000, tries: 2 });
  if (input.resolver) r.setServers([input.resolver]);
  return r;
}

const code = (err: unknown) => (err as { code?: string }).code ?? 'ERROR';

async function lookup<T>(fn: () => Promise<T>): Promise<{ value?: T; error?: string }> {
  try {
    return { value: await fn() };
  } catch (err) {
    const c = code(err);
    return c === 'ENODATA' || c === 'ENOTFOUND' ? {} : { error: `${c} (${(err as Error).message})` };
  }
}

/** What DNS holds at `name` other than a CNAME, for "found instead" (A, AAAA, TXT). */
async function otherRecords(res: Resolver, name: string): Promise<string[]> {
  const [a, aaaa, txt] = await Promise.all([lookup(() => res.resolve4(name)), lookup(() => res.resolve6(name)), lookup(() => res.resolveTxt(name))]);
  return [...(a.value ?? []).map((v) => `A ${v}`), ...(aaaa.value ?? []).map((v) => `AAAA ${v}`), ...(txt.value ?? []).map((v) => `TXT "${v.join('')}"`)];
}

async function checkCname(res: Resolver, rec: RequiredRecord, queryName: string): Promise<RecordCheck> {
  const { value, error } = await lookup(() => res.resolveCname(queryName));
  if (error) return { ...rec, ok: false, found: [], problem: `could not look up ${rec.name}: ${error}` };
  const targets = (value ?? []).map(normalizeName);
  if (targets.includes(rec.value)) return { ...rec, ok: true, found: targets.map((t) => `CNAME ${t}`) };
  if (targets.length) {
    return { ...rec, ok: false, found: targets.map((t) => `CNAME ${t}`), problem: `${rec.name} is a CNAME to ${targets.join(', ')} instead of ${rec.value}` };
  }
  const other = await otherRecords(res, queryName);
  if (other.length) return { ...rec, ok: false, found: other, problem: `${rec.name} has ${other.join(', ')} instead of CNAME ${rec.value}` };
  return { ...rec, ok: false, found: [], problem: `${rec.name} has no record yet: create CNAME ${rec.value} (DNS changes can take a few minutes to show)` };
}

async function checkTxt(res: Resolver, rec: RequiredRecord): Promise<RecordCheck> {
  const { value, error } = await lookup(() => res.resolveTxt(rec.name));
  if (error) return { ...rec, ok: false, found: [], problem: `could not look up ${rec.name}: ${error}` };
  const values = (value ?? []).map((v) => v.join(''));
  if (values.includes(rec.value)) return { ...rec, ok: true, found: values.map((v) => `TXT "${v}"`) };
  if (values.length) return { ...rec, ok: false, found: values.map((v) => `TXT "${v}"`), problem: `${rec.name} has TXT ${values.map((v) => `"${v}"`).join(', ')} but not the verification token "${rec.value}"` };
  return { ...rec, ok: false, found: [], problem: `${rec.name} has no TXT record yet: create TXT "${rec.value}"` };
}

/**
 * Checks the customer's records through `input.resolver` (or the system's). The wildcard is
 * checked by asking for a random name under the domain, which only a wildcard can answer.
 */
export async function verifyDomainDns(input: VerifyDnsInput): Promise<DomainVerification> {
  const res = makeResolver(input);
  const domain = normalizeName(input.domain);
  const [wild, acme, token] = requiredRecords(input);
  const probe = `tunn-check-${randomBytes(5).toString('hex')}.${domain}`;
  const records = await Promise.all([checkCname(res, wild!, probe), checkCname(res, acme!, acme!.name), ...(token ? [checkTxt(res, token)] : [])]);
  return { domain, ok: records.every((r) => r.ok), records };
}

/** The problems of a failed verification as lines for the CLI. */
export function verificationProblems(v: DomainVerification): string[] {
  return v.records.filter((r) => !r.ok).map((r) => r.problem ?? `${r.name}: not as expected`);
}
