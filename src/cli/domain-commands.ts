import { Option, type Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DomainView, VerifyResult } from '../api/domains.ts';
import type { RequiredRecord } from '../dns/verify.ts';
import { TunnError } from '../lib/errors.ts';
import { confirm, type PromptIo } from './confirm.ts';
import { printJson } from './output.ts';
import type { RelayApi } from './api-client.ts';
import { apiFlags } from './identity-commands.ts';
import { pathParams } from '../api/client.ts';

// `tunn domain add|verify|list|show|share|unshare|delete` and `tunn cert list` (seed 002
// "Custom Domains", "Domain Sharing"). Human output by default, JSON with --json.

/** The typed API client these commands call (src/cli/api-client.ts). */
export type DomainApi = Pick<RelayApi, 'call'>;

/** Builds the client from the command's options (--relay, --token, --relay-ca, saved login). */
export type DomainApiFactory = (opts: Record<string, unknown>) => DomainApi | Promise<DomainApi>;

export interface AddResponse {
  domain: DomainView;
  records: RequiredRecord[];
  created: boolean;
  verification?: VerifyResult;
}

interface Out {
  line(s: string): void;
}
const stdout: Out = { line: (s) => process.stdout.write(s + '\n') };

/** The zone the customer edits: `mycompany.com` for `tunn.mycompany.com`. */
export function parentZone(domain: string): string {
  const labels = domain.split('.');
  return labels.length > 2 ? labels.slice(1).join('.') : domain;
}

/** The records block exactly as seed 002 shows it. */
export function formatRecords(domain: string, records: RequiredRecord[]): string[] {
  const width = Math.max(40, ...records.map((r) => r.name.length + 4));
  const out = [`tunn: To verify ownership, add these DNS records to ${parentZone(domain)}:`, ''];
  for (const r of records) out.push(`      ${r.name.padEnd(width)}${r.type.padEnd(7)}${r.type === 'TXT' ? `"${r.value}"` : r.value}`);
  const acme = records.find((r) => r.name.startsWith('_acme-challenge.'));
  const id = acme?.value.split('._acme.')[0];
  if (id) out.push('', `      (${id} is your unique account identifier)`);
  return out;
}

export function formatDomain(d: DomainView): string[] {
  const shares = d.shares.length ? d.shares.map((s) => (s.startsWith('@') ? `${s} (domain wildcard)` : s)).join(', ') : '(nobody; owner only)';
  const tls = d.tls;
  const cert =
    tls.mode === 'passthrough'
      ? 'passthrough (the certificate is managed upstream)'
      : tls.mode === 'agent'
        ? `none at the relay: TLS ends at the agents of its tunnels (--terminate-at agent); relay fallback: ${tls.allowRelayFallback ? 'allowed (--allow-relay-fallback: the relay terminates a tunnel\'s name until its agent is ready)' : 'off (visitors fail the handshake until the agent is ready)'}`
        : `${tls.status}${tls.notAfter ? `, expires ${tls.notAfter}` : ''}${tls.lastError ? `; last error: ${tls.lastError}` : ''}${tls.nextRetryAt ? `; next attempt ${tls.nextRetryAt}` : ''}`;
  return [
    `Domain: ${d.domain}`,
    `Owner:  ${d.owner}${d.role === 'shared' ? ' (shared with you)' : ''}`,
    `Shared: ${shares}`,
    `Status: ${d.status === 'verified' ? 'verified' : 'pending verification (DNS records not confirmed yet: tunn domain verify ' + d.domain + ')'}`,
    `Cert:   ${cert}`,
  ];
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('').trimEnd());
}

export interface WaitOptions {
  intervalMs: number;
  timeoutMs: number;
  json: boolean;
  out?: Out;
}

/** Polls verify until the records are right, printing what is still missing whenever it changes. */
export async function waitForVerification(api: DomainApi, domain: string, o: WaitOptions): Promise<VerifyResult> {
  const out = o.out ?? stdout;
  const started = Date.now();
  let last = '';
  let lastPrint = 0;
  if (!o.json) out.line('tunn: Waiting for DNS propagation...');
  for (;;) {
    const v: VerifyResult = await api.call((c) => c.v1.domains[':domain'].verify.$post({ param: pathParams({ domain }) }));
    if (v.verified) return v;
    const key = v.problems.join('\n');
    const elapsed = Math.round((Date.now() - started) / 1000);
    if (key !== last || Date.now() - lastPrint > 30_000) {
      if (o.json) printJson({ event: 'waiting', domain, elapsedSeconds: elapsed, problems: v.problems, records: v.records });
      else for (const p of v.problems) out.line(`tunn:   still missing (${elapsed}s): ${p}`);
      last = key;
      lastPrint = Date.now();
    }
    if (o.timeoutMs > 0 && Date.now() - started >= o.timeoutMs) {
      throw new TunnError('DNS_MISMATCH', `${domain} is still not verified after ${elapsed}s: ${v.problems.join('; ')}. Fix the records and run \`tunn domain verify ${domain}\``);
    }
    await sleep(o.intervalMs);
  }
}

function secondsOpt(v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new TunnError('INVALID_INPUT', `"${String(v)}" is not a number of seconds`);
  return n;
}

export async function domainAdd(api: DomainApi, domain: string, opts: { wait: boolean; json: boolean; intervalMs: number; timeoutMs: number; out?: Out; terminateAt?: 'relay' | 'agent'; allowRelayFallback?: boolean }): Promise<void> {
  const out = opts.out ?? stdout;
  const r: AddResponse = await api.call((c) => c.v1.domains.$post({ json: { domain, verify: true, ...(opts.terminateAt ? { terminateAt: opts.terminateAt } : {}), ...(opts.allowRelayFallback ? { allowRelayFallback: true } : {}) } }));
  const d = r.domain;
  const verified = d.status === 'verified';
  if (opts.json) {
    printJson({ event: 'domain', domain: d.domain, records: r.records, created: r.created, verified, status: d.status, problems: r.verification?.problems ?? [], tls: d.tls });
  } else {
    for (const l of formatRecords(d.domain, r.records)) out.line(l);
    out.line('');
  }
  if (verified) {
    if (opts.json) printJson({ event: 'verified', domain: d.domain, verifiedAt: d.verifiedAt });
    else out.line(`tunn: Verified! *.${d.domain} is now registered to your account.`);
    return;
  }
  if (!opts.wait) {
    if (!opts.json) {
      for (const p of r.verification?.problems ?? []) out.line(`tunn:   not yet: ${p}`);
      out.line(`tunn: Not verified yet. Once the records are in place, run: tunn domain verify ${d.domain}`);
    }
    return;
  }
  const v = await waitForVerification(api, d.domain, { intervalMs: opts.intervalMs, timeoutMs: opts.timeoutMs, json: opts.json, out });
  if (opts.json) printJson({ event: 'verified', domain: d.domain, verifiedAt: v.verifiedAt });
  else out.line(`tunn: Verified! *.${d.domain} is now registered to your account.`);
}

const common = apiFlags;

/** `promptIo`: where `domain delete` asks (default: stdin and stderr). */
export function registerDomainCommands(program: Command, client: DomainApiFactory, opts: { promptIo?: PromptIo } = {}): void {
  const domain = program.command('domain').description('custom domains: add, verify, share and manage them');
  const out = stdout;

  common(domain.command('add').description('register a custom domain: prints the DNS records to create, then waits until they are in place'))
    .argument('<domain>', 'e.g. tunn.mycompany.com')
    .option('--no-wait', 'print the records and return at once (check later with `tunn domain verify`)')
    .option('--interval <seconds>', 'how often to check DNS while waiting (default 5)')
    .option('--timeout <seconds>', 'give up waiting after this long (default 1800; 0 = never)')
    .addOption(new Option('--terminate-at <where>', 'where TLS of its tunnels ends: relay (default: the relay gets *.<domain>) or agent (no relay certificate at all; tunnels need --terminate-at agent)').choices(['relay', 'agent']))
    .option('--allow-relay-fallback', 'with --terminate-at agent: the relay may terminate a tunnel\'s name until its agent\'s certificate is ready')
    .action(async (name: string, o: Record<string, unknown>) => {
      await domainAdd(await client(o), name, {
        terminateAt: o.terminateAt as 'relay' | 'agent' | undefined,
        allowRelayFallback: o.allowRelayFallback === true,
        wait: o.wait !== false,
        json: Boolean(o.json),
        intervalMs: secondsOpt(o.interval, 5) * 1000,
        timeoutMs: secondsOpt(o.timeout, 1800) * 1000,
      });
    });

  common(domain.command('verify').description('check the DNS records of a domain again (and retry its certificate)'))
    .argument('<domain>')
    .action(async (name: string, o: Record<string, unknown>) => {
      const v = await (await client(o)).call((c) => c.v1.domains[':domain'].verify.$post({ param: pathParams({ domain: name }) }));
      if (o.json) printJson({ event: 'verify', ...v });
      else if (v.verified) out.line(`tunn: Verified! *.${v.domain} is registered to your account.`);
      else {
        out.line(`tunn: ${v.domain} is not verified:`);
        for (const p of v.problems) out.line(`  - ${p}`);
      }
      if (!v.verified) process.exitCode = 1;
    });

  common(domain.command('list').description('your domains and the ones shared with you'))
    .action(async (o: Record<string, unknown>) => {
      const { domains } = await (await client(o)).call((c) => c.v1.domains.$get());
      if (o.json) return printJson({ event: 'domains', domains });
      if (!domains.length) return out.line('No custom domains yet. Add one with: tunn domain add tunn.mycompany.com');
      const rows = [['DOMAIN', 'ROLE', 'STATUS', 'CERTIFICATE', 'EXPIRES', 'SHARED WITH']];
      for (const d of domains) rows.push([d.domain, d.role === 'owner' ? 'owner' : `shared by ${d.owner}`, d.status === 'verified' ? 'verified' : 'pending', d.tls.status, d.tls.notAfter ?? '-', d.shares.join(',') || '-']);
      for (const l of table(rows)) out.line(l);
    });

  common(domain.command('show').description('owner, shares, status and certificate state of a domain'))
    .argument('<domain>')
    .action(async (name: string, o: Record<string, unknown>) => {
      const r = await (await client(o)).call((c) => c.v1.domains[':domain'].$get({ param: pathParams({ domain: name }) }));
      if (o.json) return printJson({ event: 'domain', ...r });
      for (const l of formatDomain(r.domain)) out.line(l);
      if (r.domain.records && r.domain.status !== 'verified') for (const l of formatRecords(r.domain.domain, r.domain.records)) out.line(l);
      if (r.events.length) {
        out.line('Recent certificate events:');
        for (const e of r.events.slice(0, 10)) out.line(`  ${e.at}  ${e.kind.padEnd(15)} ${e.message}`);
      }
    });

  common(domain.command('share').description('let others create tunnels on your domain: @company.com or emails'))
    .argument('<domain>')
    .argument('<who...>', '@company.com, or alice@company.com,bob@company.com')
    .action(async (name: string, who: string[], o: Record<string, unknown>) => {
      const r = await (await client(o)).call((c) => c.v1.domains[':domain'].shares.$post({ param: pathParams({ domain: name }), json: { with: who } }));
      if (o.json) return printJson({ event: 'domain', domain: r.domain });
      out.line(`tunn: ${r.domain.domain} is shared with: ${r.domain.shares.join(', ')}`);
    });

  common(domain.command('unshare').description('stop sharing your domain with someone'))
    .argument('<domain>')
    .argument('<who>', '@company.com or an email')
    .action(async (name: string, who: string, o: Record<string, unknown>) => {
      const r = await (await client(o)).call((c) => c.v1.domains[':domain'].shares[':who'].$delete({ param: pathParams({ domain: name, who }) }));
      if (o.json) return printJson({ event: 'domain', domain: r.domain });
      out.line(`tunn: ${r.domain.domain} is ${r.domain.shares.length ? `shared with: ${r.domain.shares.join(', ')}` : 'no longer shared with anyone'}`);
    });

  common(domain.command('delete').description('remove a domain you own (and its certificate)'))
    .argument('<domain>')
    .option('-y, --yes', 'do not ask for confirmation (asked only at a terminal)')
    .action(async (name: string, o: Record<string, unknown>) => {
      const api = await client(o);
      const sure = await confirm(`Delete ${name} and its certificate? Tunnels on it go offline, and those you shared it with lose it.`, { yes: Boolean(o.yes), io: opts.promptIo });
      if (!sure) throw new TunnError('INVALID_INPUT', `${name} not deleted (pass --yes to skip this question)`);
      const r = await api.call((c) => c.v1.domains[':domain'].$delete({ param: pathParams({ domain: name }) }));
      if (o.json) return printJson({ event: 'deleted', domain: r.domain });
      out.line(`tunn: ${r.domain} deleted. You can remove its DNS records now.`);
    });

  const cert = program.command('cert').description('certificates the relay serves');
  common(cert.command('list').description("each certificate's state, issuer, expiry and last error"))
    .action(async (o: Record<string, unknown>) => {
      const { certs, agent } = await (await client(o)).call((c) => c.v1.certs.$get());
      if (o.json) return printJson({ event: 'certs', certs, agent });
      if (!certs.length && !agent.length) return out.line('No certificates yet: they are issued on the first visit (or right after `tunn domain add`).');
      if (certs.length) {
        const rows = [['NAME', 'STATE', 'ISSUER', 'EXPIRES', 'RENEWS', 'LAST ERROR']];
        for (const c of certs) rows.push([c.name, c.status, c.issuer, c.notAfter, c.renewAt, c.lastError ?? '-']);
        for (const l of table(rows)) out.line(l);
      }
      if (agent.length) for (const l of agentCertLines(agent)) out.line(l);
    });
}

/** `tunn cert list`'s rows for names whose TLS ends at an agent (issue 12), and who else could decrypt them. */
export function agentCertLines(agent: { name: string; terminatedAt: string; state: string; reason: string | null; notAfter: string | null; pin: string | null; coveredBy: string | null; dns01Remaining: number }[]): string[] {
  const rows = [['NAME', 'TLS ENDS AT', 'STATE', 'EXPIRES', 'PIN']];
  for (const a of agent) {
    const where = a.terminatedAt === 'agent' ? (a.coveredBy ? `agent (relay holds a covering wildcard: ${a.coveredBy})` : 'agent') : `relay (fallback: ${a.reason ?? 'agent certificate pending'})`;
    rows.push([a.name, where, a.state, a.notAfter ?? '-', a.pin ? `sha256//${a.pin}` : '-']);
  }
  return ['', ...table(rows), `DNS-01 challenges left this week for your agents: ${Math.min(...agent.map((a) => a.dns01Remaining))}`];
}
