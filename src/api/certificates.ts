import { Hono } from 'hono';
import type { Identity } from '../auth/identity.ts';
import { nameMatches } from '../certs/issuer.ts';
import type { CertListEntry } from '../certs/manager.ts';
import { normalizeHost } from '../lib/host.ts';
import { accountById } from '../store/accounts.ts';
import type { TlsStatus } from '../store/schema.ts';
import { isRelayAdmin, requireCaller } from './caller.ts';
import { domainsVisibleTo, type Caller, type DomainRole } from '../domains/access.ts';
import type { DomainApiOptions } from './domains.ts';
import type { ApiEnv } from './http.ts';

// GET /v1/certs (`tunn cert list`) and GET /v1/certificates (the console's Certificates page,
// seed 001's lifecycle and seed 000's "where TLS ends"): read from the certificate manager's
// list and the domains rows it keeps the lifecycle in; nothing here writes.

/** One name the relay holds (or is getting) a certificate for, as the caller may see it. */
export interface CertificateView {
  /** The certificate's name (`*.shop.example.com`, the relay's `*.tunn.example.com`). */
  name: string;
  names: string[];
  /** The custom domain it belongs to; null for the relay's own names. */
  domain: string | null;
  /** Why the caller sees it: their domain, a domain shared with them, the relay's own, or as a relay admin. */
  access: DomainRole | 'relay' | 'admin';
  owner: string | null;
  state: TlsStatus;
  issuer: string | null;
  notBefore: string | null;
  notAfter: string | null;
  renewAt: string | null;
  lastError: string | null;
  nextRetryAt: string | null;
  /** Where TLS ends for this name: at the relay, or at the agent (its certificate's pin then; the relay holds no key for it). */
  terminatedAt: 'relay' | 'agent';
  pin: string | null;
}

/** A name whose TLS ends at an agent (issue 12), as the agent last reported it to the relay. */
export interface AgentCertReport {
  name: string;
  accountId: string;
  owner: string;
  terminatedAt: 'agent' | 'relay';
  /** Why the relay terminates (fallback), or a renewal problem the agent retries. */
  reason?: string;
  notAfter?: number;
  pin?: string;
  /** DNS-01 challenges the owner's agents have left this week (names under the relay's zone). */
  dns01Remaining: number;
}

/** The relay certificate (its name) that also covers `name`, if any: the relay could terminate it too. */
function coveringCert(name: string, all: readonly CertListEntry[]): string | null {
  return all.find((e) => e.status !== 'pending_issue' && e.names.some((p) => nameMatches(p, name)))?.name ?? null;
}

/** `tunn cert list`'s agent rows: where TLS ends, state, not-after, pin, and who else could decrypt. */
function agentRows(reports: readonly AgentCertReport[], all: readonly CertListEntry[]) {
  return reports.map((r) => ({
    name: r.name,
    terminatedAt: r.terminatedAt,
    state: r.terminatedAt === 'agent' ? 'issued' : 'pending_issue',
    reason: r.reason ?? null,
    notAfter: r.notAfter ? new Date(r.notAfter).toISOString() : null,
    pin: r.pin ?? null,
    coveredBy: coveringCert(r.name, all),
    dns01Remaining: r.dns01Remaining,
  }));
}

function relayOwn(name: string, relayDomain: string): boolean {
  const n = normalizeHost(name);
  const r = normalizeHost(relayDomain);
  return n === r || n === `*.${r}`;
}

/** The custom domain `name` is under, among `domains` (longest match), if any. */
function domainOf(name: string, domains: Iterable<string>): string | undefined {
  const n = normalizeHost(name).replace(/^\*\./, '');
  let best: string | undefined;
  for (const d of domains) if ((n === d || n.endsWith(`.${d}`)) && (!best || d.length > best.length)) best = d;
  return best;
}

export function certRoutes(identity: Identity, opts: Pick<DomainApiOptions, 'manager' | 'relayDomain'>, agentCerts: () => AgentCertReport[] = () => []) {
  const store = identity.store;

  /** Every certificate the caller may see: their and shared domains', the relay's own; admins: all. */
  async function visible(who: Caller): Promise<CertificateView[]> {
    const admin = isRelayAdmin(identity, who.email);
    const mine = new Map((await domainsVisibleTo(store, who)).map((x) => [x.domain.domain, x] as const));
    const owners = new Map<string, string | null>();
    const ownerOf = async (accountId: string) => {
      if (!owners.has(accountId)) owners.set(accountId, (await accountById(store, accountId))?.email ?? null);
      return owners.get(accountId)!;
    };
    const all: CertListEntry[] = opts.manager ? await opts.manager.list() : [];
    const out: CertificateView[] = [];
    const covered = new Set<string>();
    for (const e of all) {
      const domain = e.domain ?? domainOf(e.name, mine.keys());
      const seen = domain ? mine.get(domain) : undefined;
      const access = seen ? seen.role : relayOwn(e.name, opts.relayDomain) ? 'relay' : admin ? 'admin' : undefined;
      if (!access) continue;
      if (domain) covered.add(domain);
      out.push({
        name: e.name,
        names: e.names,
        domain: domain ?? null,
        access,
        owner: seen ? await ownerOf(seen.domain.accountId) : null,
        state: e.status,
        issuer: e.issuer,
        notBefore: e.notBefore,
        notAfter: e.notAfter,
        renewAt: e.renewAt,
        lastError: e.lastError,
        nextRetryAt: e.nextRetryAt,
        terminatedAt: 'relay',
        pin: null,
      });
    }
    // Domains without a certificate yet show where they are in the lifecycle (pending_route, pending_issue, …).
    for (const [name, { domain: d, role }] of mine) {
      if (covered.has(name)) continue;
      out.push({
        name: `*.${name}`,
        names: [`*.${name}`, name],
        domain: name,
        access: role,
        owner: await ownerOf(d.accountId),
        state: d.tlsStatus,
        issuer: null,
        notBefore: null,
        notAfter: d.tlsNotAfter,
        renewAt: null,
        lastError: d.tlsLastError,
        nextRetryAt: d.certNextRetryAt,
        terminatedAt: 'relay',
        pin: null,
      });
    }
    // Names whose TLS ends at an agent: the owner's tunnels (admins: all).
    for (const r of agentCerts()) {
      if (r.accountId !== who.accountId && !admin) continue;
      out.push({
        name: r.name,
        names: [r.name],
        domain: domainOf(r.name, mine.keys()) ?? null,
        access: r.accountId === who.accountId ? 'owner' : 'admin',
        owner: r.owner,
        state: r.terminatedAt === 'agent' ? 'issued' : 'pending_issue',
        issuer: null,
        notBefore: null,
        notAfter: r.notAfter ? new Date(r.notAfter).toISOString() : null,
        renewAt: null,
        lastError: r.reason ?? null,
        nextRetryAt: null,
        terminatedAt: r.terminatedAt,
        pin: r.pin ?? null,
      });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  // Mounted at the root (two prefixes): authentication per route, not .use(), which would reach every path.
  const auth = requireCaller(identity);
  return new Hono<ApiEnv>()
    .get('/v1/certs', auth, async (c) => {
      // `tunn cert list`: the relay's own certificates and those of the caller's domains.
      const mine = new Set((await domainsVisibleTo(store, c.get('caller'))).map((x) => x.domain.domain));
      const all: CertListEntry[] = opts.manager ? await opts.manager.list() : [];
      const who = c.get('caller');
      const agent = agentRows(agentCerts().filter((r) => r.accountId === who.accountId), all);
      return c.json({ certs: all.filter((e) => !e.domain || mine.has(e.domain)).map((e) => ({ ...e, relay: !e.domain })), agent });
    })
    .get('/v1/certificates', auth, async (c) => c.json({ certificates: await visible(c.get('caller')) }));
}
