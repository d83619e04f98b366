import { TunnError } from '../lib/errors.ts';
import { emailDomain, isValidDomain, parseEmail } from './emails.ts';
import type { GrantService } from './grants.ts';
import { isValidGroupName, type GroupService } from './groups.ts';
import { isValidIdpGroupName, normaliseIdpGroup, type IdpLookup } from './idp-groups.ts';

// Who may reach a tunnel. `-a` entries are an email, `@domain.com` (everyone with a verified
// email in that domain), `group:name` (a group of the tunnel owner's account) or `idp:name`
// (a group the identity provider puts the visitor in, src/auth/idp-groups.ts). Private by
// default: no entries means only the owner. Groups are expanded when a request is checked,
// never at tunnel start, so a group change applies to live tunnels on the next request.
// Grants (src/auth/grants.ts) add entries that end on their own.

export type AllowEntry =
  | { kind: 'email'; email: string }
  | { kind: 'domain'; domain: string }
  | { kind: 'group'; name: string }
  | { kind: 'idp'; name: string };

/** Parses one `-a` entry; throws INVALID_INPUT naming the entry. */
export function parseAllowEntry(raw: string): AllowEntry {
  const s = raw.trim();
  if (s.toLowerCase().startsWith('idp:')) {
    const name = s.slice('idp:'.length).trim();
    if (!isValidIdpGroupName(name)) throw new TunnError('INVALID_INPUT', `-a "${raw}": name the identity provider's group, e.g. idp:engineering (up to 256 characters, no commas)`);
    return { kind: 'idp', name: normaliseIdpGroup(name) };
  }
  if (s.toLowerCase().startsWith('group:')) {
    const name = s.slice('group:'.length).trim().toLowerCase();
    if (!isValidGroupName(name)) {
      throw new TunnError('INVALID_INPUT', `-a "${raw}": "${name}" is not a valid group name (lower-case letters, digits, - and _, up to 64)`);
    }
    return { kind: 'group', name };
  }
  if (s.startsWith('@')) {
    const domain = s.slice(1).toLowerCase();
    if (!isValidDomain(domain)) throw new TunnError('INVALID_INPUT', `-a "${raw}": "${domain}" is not a valid email domain (expected @example.com)`);
    return { kind: 'domain', domain };
  }
  const email = parseEmail(s);
  if (!email) {
    throw new TunnError('INVALID_INPUT', `-a "${raw}" is not an email, an @domain, a group:name or an idp:name (examples: alice@example.com, @example.com, group:eng, idp:engineering)`);
  }
  return { kind: 'email', email };
}

/** Parses every entry, reporting all bad ones at once. */
export function parseAllowList(entries: readonly string[]): AllowEntry[] {
  const out: AllowEntry[] = [];
  const errors: string[] = [];
  for (const e of entries) {
    try {
      out.push(parseAllowEntry(e));
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length) throw new TunnError('INVALID_INPUT', errors.join('; '));
  return out;
}

export function formatAllowEntry(e: AllowEntry): string {
  return e.kind === 'email' ? e.email : e.kind === 'domain' ? `@${e.domain}` : `${e.kind}:${e.name}`;
}

export interface AllowListSummary {
  entries: string[];
  /** Every group named, with its current size. */
  groups: { name: string; emails: number }[];
}

/** The tunnel as the policy sees it. `host` and `grantRef` bring in its grants. */
export interface PolicyTunnel {
  ownerAccountId: string;
  ownerEmail: string;
  allow: readonly string[];
  public: boolean;
  host?: string;
  /** The registration's `--for` ref: its -a entries then live in grants, not in `allow`. */
  grantRef?: string;
}

/** The visitor: a normalised email, and their IdP groups when asked (looked up only if an idp: entry needs them). */
export interface Visitor {
  email: string;
  idpGroups?: () => Promise<IdpLookup>;
}

/** allowed, or not with the reason membership could not be confirmed (the gate then shows it; fail closed). */
/** `unconfirmed`: for the visitor (what to do); `unconfirmedDetail`: the causes, for the relay's log and security events. */
export type PolicyAnswer = { allowed: true } | { allowed: false; unconfirmed?: string[]; unconfirmedDetail?: string[] };

export class Policy {
  readonly #groups: GroupService;
  readonly #grants: GrantService | undefined;
  // Parsed allow-lists, keyed by the array the gateway passes (it keeps one per tunnel).
  #parsed = new WeakMap<readonly string[], AllowEntry[]>();

  readonly #idpEnabled: () => boolean;

  constructor(opts: { groups: GroupService; grants?: GrantService; /** Whether the relay has a source of IdP groups (idp: entries need one). */ idpEnabled?: () => boolean }) {
    this.#groups = opts.groups;
    this.#grants = opts.grants;
    this.#idpEnabled = opts.idpEnabled ?? (() => false);
  }

  /**
   * Validates a tunnel's `-a` entries at registration: bad syntax → INVALID_INPUT naming the
   * entry; a group the owner does not have → UNKNOWN_GROUP naming it. Returns the normalised
   * entries and group sizes for the agent's banner.
   */
  async validate(ownerAccountId: string, entries: readonly string[]): Promise<AllowListSummary> {
    const parsed = parseAllowList(entries);
    const idp = parsed.find((e) => e.kind === 'idp');
    // An idp: entry on a relay that learns no groups would silently match nobody.
    if (idp && !this.#idpEnabled()) {
      throw new TunnError('INVALID_INPUT', `-a idp:${idp.name}: this relay has no identity-provider groups; its operator enables them with --oidc-groups-claim or --ldap-url (use an email, @domain or group:name meanwhile)`);
    }
    const groups: AllowListSummary['groups'] = [];
    const unknown: string[] = [];
    for (const e of parsed) {
      if (e.kind !== 'group') continue;
      const members = await this.#groups.members(ownerAccountId, e.name);
      if (!members) unknown.push(e.name);
      else groups.push({ name: e.name, emails: members.size });
    }
    if (unknown.length) {
      throw new TunnError(
        'UNKNOWN_GROUP',
        `unknown group${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `"group:${n}"`).join(', ')}: create ${unknown.length > 1 ? 'them' : 'it'} with \`tunn group create ${unknown[0]} <emails…>\` or fix -a`,
      );
    }
    return { entries: parsed.map(formatAllowEntry), groups };
  }

  /** Whether `email` (already normalised) may reach the tunnel. The owner always may. */
  async allows(tunnel: PolicyTunnel, visitor: string | Visitor): Promise<boolean> {
    return (await this.decide(tunnel, typeof visitor === 'string' ? { email: visitor } : visitor)).allowed;
  }

  /** The decision, with why IdP membership could not be confirmed when that is what denied it. */
  async decide(tunnel: PolicyTunnel, visitor: Visitor): Promise<PolicyAnswer> {
    if (tunnel.public) return { allowed: true };
    const e = visitor.email.toLowerCase();
    if (e === tunnel.ownerEmail.toLowerCase()) return { allowed: true };
    let parsed = this.#parsed.get(tunnel.allow);
    if (!parsed) {
      parsed = parseAllowList(tunnel.allow);
      this.#parsed.set(tunnel.allow, parsed);
    }
    const entries = this.#grants && tunnel.host ? [...parsed, ...(await this.#grants.live(tunnel.ownerAccountId, tunnel.host, tunnel.grantRef))] : parsed;
    const domain = emailDomain(e);
    for (const entry of entries) {
      if (entry.kind === 'email' && entry.email === e) return { allowed: true };
      if (entry.kind === 'domain' && entry.domain === domain) return { allowed: true };
    }
    for (const entry of entries) {
      if (entry.kind !== 'group') continue;
      // A group deleted after the tunnel started simply matches nobody.
      const members = await this.#groups.members(tunnel.ownerAccountId, entry.name);
      if (members?.has(e)) return { allowed: true };
    }
    const wanted = entries.filter((x) => x.kind === 'idp').map((x) => x.name);
    if (wanted.length === 0 || !visitor.idpGroups) return { allowed: false };
    // Fail closed: a group that could not be confirmed does not match.
    const known = await visitor.idpGroups();
    if (wanted.some((g) => known.groups.includes(g))) return { allowed: true };
    return known.problems.length ? { allowed: false, unconfirmed: known.problems, unconfirmedDetail: known.details } : { allowed: false };
  }
}
