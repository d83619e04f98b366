import { Hono } from 'hono';
import type { Identity } from '../auth/identity.ts';
import type { AlertHook } from '../certs/alerts.ts';
import { bodyLimit } from 'hono/body-limit';
import { LEGACY_TOKEN_HEADER, ReplayGuard, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../certs/cert-event-signature.ts';
import { listCertEvents } from '../certs/events.ts';
import type { CertManager } from '../certs/manager.ts';
import { domainsVisibleTo, roleOf, type Caller, type DomainRole } from '../domains/access.ts';
import { addDomain, checkAddable } from '../domains/add.ts';
import { handleCertEvent } from '../domains/cert-events.ts';
import { normalizeCustomDomain } from '../domains/names.ts';
import { deleteDomain, domainByName, type Domain } from '../domains/records.ts';
import { shareDomain, shareEntries, unshareDomain } from '../domains/share.ts';
import { verifyAndCertify, type VerifyResult } from '../domains/verify.ts';
import { requiredRecords, type RequiredRecord } from '../dns/verify.ts';
import type { Clock } from '../lib/clock.ts';
import { errorMessage, TunnError } from '../lib/errors.ts';
import { accountById } from '../store/accounts.ts';
import { z } from 'zod';
import { requireCaller } from './caller.ts';
import type { ApiEnv } from './http.ts';
import { jsonBody, params } from './validate.ts';

// /v1/domains — `tunn domain add|verify|list|show|share|unshare|delete` and the console's
// Domains page (seed 002 "Custom Domains", "Domain Sharing"; seed 001 lifecycle and
// `POST /v1/domains/cert-events`). The owner manages a domain; shared users may see it and
// create tunnels on it, nothing more. The rules live in src/domains; these are the routes.

export interface DomainApiOptions {
  relayDomain: string;
  /** `--dns-resolver host:port` for verification; the system's resolver when omitted. */
  resolver?: string;
  /** `--strict-domain-verify`: also require `_tunn-verify.<domain> TXT <token>`. */
  strict: boolean;
  /** Issues the wildcard right after verification and lists certificates; optional in tests. */
  manager?: CertManager;
  /** `--cert-event-token(-file)`, the key that signs cert events; without it `POST /v1/domains/cert-events` answers 404. */
  certEventToken?: string;
  onAlert?: AlertHook;
  clock?: Clock;
}

export interface DomainView {
  domain: string;
  owner: string;
  role: DomainRole;
  shares: string[];
  /** verified | pending_verification */
  status: 'verified' | 'pending_verification';
  verifiedAt: string | null;
  createdAt: string;
  tls: {
    /** agent: TLS ends at the agents of its tunnels; the relay holds no wildcard for it (issue 12). */
    mode: 'terminate' | 'passthrough' | 'agent';
    /** With mode agent: the relay may terminate a tunnel's name until its agent is ready (`--allow-relay-fallback`). */
    allowRelayFallback: boolean;
    status: Domain['tlsStatus'];
    notAfter: string | null;
    lastError: string | null;
    lastCheckedAt: string | null;
    certificateRef: string | null;
    failurePolicy: Domain['certFailurePolicy'];
    failureCount: number;
    nextRetryAt: string | null;
  };
  /** The DNS records to create (owner only). */
  records?: RequiredRecord[];
}

export type { VerifyResult };

const addBody = z.object({
  domain: z.string().min(1).max(253),
  verify: z.boolean().optional(),
  /** agent: TLS for the domain's tunnels ends at their agents, and the relay gets no wildcard for it. */
  terminateAt: z.enum(['relay', 'agent']).optional(),
  allowRelayFallback: z.boolean().optional(),
});
const shareBody = z.object({ with: z.array(z.string().max(1000)).max(1000) });
/** `share` given: would sharing `domain` with these be accepted; else: would adding `domain` be. */
const validateBody = z.object({ domain: z.string().min(1).max(253), share: z.array(z.string().max(1000)).max(1000).optional() });
const domainParam = z.object({ domain: z.string().min(1).max(253) });
const shareParam = z.object({ domain: z.string().min(1).max(253), who: z.string().min(1).max(320) });

export function domainRoutes(identity: Identity, opts: DomainApiOptions) {
  const store = identity.store;
  const auth = requireCaller(identity);
  const now = () => (opts.clock ?? identity.clock).now();
  const caller = (c: { get(k: 'caller'): { accountId: string; email: string } }): Caller => ({ accountId: c.get('caller').accountId, email: c.get('caller').email });
  const recordsFor = (d: Domain) => requiredRecords({ domain: d.domain, acmeId: d.acmeIdentifier, relayDomain: opts.relayDomain, strict: opts.strict, verificationToken: d.verificationToken });

  async function view(d: Domain, role: DomainRole): Promise<DomainView> {
    const owner = (await accountById(store, d.accountId))?.email ?? '(deleted account)';
    return {
      domain: d.domain,
      owner,
      role,
      shares: d.shares,
      status: d.verifiedAt ? 'verified' : 'pending_verification',
      verifiedAt: d.verifiedAt,
      createdAt: d.createdAt,
      tls: {
        mode: d.tlsMode,
        allowRelayFallback: d.allowRelayFallback,
        status: d.tlsStatus,
        notAfter: d.tlsNotAfter,
        lastError: d.tlsLastError,
        lastCheckedAt: d.tlsLastCheckedAt,
        certificateRef: d.certificateRef,
        failurePolicy: d.certFailurePolicy,
        failureCount: d.certFailureCount,
        nextRetryAt: d.certNextRetryAt,
      },
      ...(role === 'owner' ? { records: recordsFor(d) } : {}),
    };
  }

  /** The domain named in the path, visible to the caller (404 otherwise, so others' domains do not leak). */
  async function visible(who: Caller, name: string): Promise<{ d: Domain; role: DomainRole }> {
    const d = await domainByName(store, name);
    const role = d && roleOf(d, who);
    if (!d || !role) throw new TunnError('NOT_FOUND', `${name.toLowerCase()} is not one of your domains; \`tunn domain list\` shows them, \`tunn domain add ${name.toLowerCase()}\` registers it`);
    return { d, role };
  }

  async function owned(who: Caller, name: string, action: string): Promise<Domain> {
    const { d, role } = await visible(who, name);
    if (role !== 'owner') {
      const owner = (await accountById(store, d.accountId))?.email ?? 'its owner';
      throw new TunnError('FORBIDDEN', `${d.domain} is shared with you by ${owner}; only the owner can ${action} it (you can create tunnels on it with -d ${d.domain})`);
    }
    return d;
  }

  const runVerify = (d: Domain): Promise<VerifyResult> => verifyAndCertify(store, d, { relayDomain: opts.relayDomain, resolver: opts.resolver, strict: opts.strict, now: now(), manager: opts.manager });

  const parseDomain = (input: string) => normalizeCustomDomain(input, opts.relayDomain);

  /** Whether `who` may add `input` (POST / and POST /validate): the normalised name, the account, and the existing row if any. */
  async function accountOf(who: Caller) {
    const account = await accountById(store, who.accountId);
    if (!account) throw new TunnError('AUTH_INVALID_TOKEN', 'the token belongs to an account that no longer exists');
    return account;
  }
  async function addable(who: Caller, input: string) {
    const name = parseDomain(input);
    const account = await accountOf(who);
    const existing = await checkAddable(store, account, name, { relayDomain: opts.relayDomain, resolver: opts.resolver });
    return { name, account, existing };
  }

  // Signed cert events are accepted once each, in order per domain: this process's guard for
  // identical signatures, the store for the last signing time per domain (src/domains/cert-events.ts).
  const certEventReplay = new ReplayGuard();
  const certEventBodyLimit = bodyLimit({ maxSize: 64 * 1024, onError: (c) => c.json({ error: { code: 'INVALID_INPUT', message: 'a cert event body is at most 64 KiB' } }, 413) });

  return new Hono<ApiEnv>()
    .post('/cert-events', certEventBodyLimit, async (c) => {
      const headers = { timestamp: c.req.header(TIMESTAMP_HEADER), signature: c.req.header(SIGNATURE_HEADER), legacyToken: c.req.header(LEGACY_TOKEN_HEADER) };
      const r = await handleCertEvent({ store, token: opts.certEventToken, replay: certEventReplay, clock: opts.clock ?? identity.clock, onAlert: opts.onAlert }, headers, await c.req.text());
      if (r.status !== 202) {
        const codes = { 400: 'INVALID_INPUT', 401: 'AUTH_INVALID_TOKEN', 404: 'NOT_FOUND', 409: 'CONFLICT', 429: 'RATE_LIMITED' } as const;
        return c.json({ error: { code: codes[r.status], message: String(r.body.message) } }, r.status);
      }
      return c.json(r.body, 202);
    })
    .get('/', auth, async (c) => {
      const list = await domainsVisibleTo(store, caller(c));
      return c.json({ domains: await Promise.all(list.map((x) => view(x.domain, x.role))) });
    })
    .post('/', auth, jsonBody(addBody), async (c) => {
      const body = c.req.valid('json');
      const wait = body.verify !== false;
      const who = caller(c);
      const name = parseDomain(body.domain);
      if (body.allowRelayFallback && body.terminateAt !== 'agent') throw new TunnError('INVALID_INPUT', '--allow-relay-fallback only applies with --terminate-at agent (otherwise the relay terminates the domain with its wildcard anyway)');
      const { domain: d, created } = await addDomain(store, await accountOf(who), name, { relayDomain: opts.relayDomain, resolver: opts.resolver, now: now(), tlsMode: body.terminateAt === 'agent' ? 'agent' : undefined, allowRelayFallback: body.allowRelayFallback });
      const verification = wait && !d.verifiedAt ? await runVerify(d) : undefined;
      const fresh = (await domainByName(store, name))!;
      return c.json({ domain: await view(fresh, 'owner'), records: recordsFor(fresh), created, verification }, created ? 201 : 200);
    })
    // The console's forms ask as the user types: would add (or, with `share`, sharing) be
    // accepted? The same checks as the two routes, so the same refusals, word for word; nothing
    // is changed.
    .post('/validate', auth, jsonBody(validateBody), async (c) => {
      const body = c.req.valid('json');
      const who = caller(c);
      if (body.share === undefined) return c.json({ ok: true as const, domain: (await addable(who, body.domain)).name });
      const d = await owned(who, body.domain, 'share');
      return c.json({ ok: true as const, domain: d.domain, share: shareEntries(d, body.share) });
    })
    .get('/:domain', auth, params(domainParam), async (c) => {
      const { d, role } = await visible(caller(c), c.req.valid('param').domain);
      const events = role === 'owner' ? await listCertEvents(store, d.domain, 20) : [];
      return c.json({ domain: await view(d, role), events });
    })
    .post('/:domain/verify', auth, params(domainParam), async (c) => {
      const d = await owned(caller(c), c.req.valid('param').domain, 'verify');
      return c.json(await runVerify(d));
    })
    .post('/:domain/shares', auth, params(domainParam), jsonBody(shareBody), async (c) => {
      const d = await owned(caller(c), c.req.valid('param').domain, 'share');
      await shareDomain(store, d, c.req.valid('json').with);
      return c.json({ domain: await view((await domainByName(store, d.domain))!, 'owner') });
    })
    .delete('/:domain/shares/:who', auth, params(shareParam), async (c) => {
      const p = c.req.valid('param');
      const d = await owned(caller(c), p.domain, 'unshare');
      await unshareDomain(store, d, p.who);
      return c.json({ domain: await view((await domainByName(store, d.domain))!, 'owner') });
    })
    .delete('/:domain', auth, params(domainParam), async (c) => {
      const d = await owned(caller(c), c.req.valid('param').domain, 'delete');
      await deleteDomain(store, d.domain);
      await opts.manager?.forget(`*.${d.domain}`).catch((err) => identity.options.onError?.(new Error(`forgetting the certificate of ${d.domain}: ${errorMessage(err)}`)));
      return c.json({ deleted: true as const, domain: d.domain });
    });
}
