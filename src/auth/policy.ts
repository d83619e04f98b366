import { TunnError } from '../lib/errors.ts';
import { emailDomain, isValidDomain, parseEmail } from './emails.ts';
import { isValidGroupName, type GroupService } from './groups.ts';

// Who may reach a tunnel. `-a` entries are an email, `@domain.com` (everyone with a verified
// email in that domain) or `group:name` (a group of the tunnel owner's account). Private by
// default: no entries means only the owner. Groups are expanded when a request is checked,
// never at tunnel start, so a group change applies to live tunnels on the next request.

export type AllowEntry =
  | { kind: 'email'; email: string }
  | { kind: 'domain'; domain: string }
  | { kind: 'group'; name: string };

/** Parses one `-a` entry; throws INVALID_INPUT naming the entry. */
export function parseAllowEntry(raw: string): AllowEntry {
  const s = raw.trim();
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
    throw new TunnError('INVALID_INPUT', `-a "${raw}" is not an email, an @domain or a group:name (examples: alice@example.com, @example.com, group:eng)`);
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
  return e.kind === 'email' ? e.email : e.kind === 'domain' ? `@${e.domain}` : `group:${e.name}`;
}

export interface AllowListSummary {
  entries: string[];
  /** Every group named, with its current size. */
  groups: { name: string; emails: number }[];
}

export class Policy {
  readonly #groups: GroupService;
  // Parsed allow-lists, keyed by the array the gateway passes (it keeps one per tunnel).
  #parsed = new WeakMap<readonly string[], AllowEntry[]>();

  constructor(opts: { groups: GroupService }) {
    this.#groups = opts.groups;
  }

  /**
   * Validates a tunnel's `-a` entries at registration: bad syntax → INVALID_INPUT naming the
   * entry; a group the owner does not have → UNKNOWN_GROUP naming it. Returns the normalised
   * entries and group sizes for the agent's banner.
   */
  async validate(ownerAccountId: string, entries: readonly string[]): Promise<AllowListSummary> {
    const parsed = parseAllowList(entries);
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
  async allows(tunnel: { ownerAccountId: string; ownerEmail: string; allow: readonly string[]; public: boolean }, email: string): Promise<boolean> {
    if (tunnel.public) return true;
    const e = email.toLowerCase();
    if (e === tunnel.ownerEmail.toLowerCase()) return true;
    let parsed = this.#parsed.get(tunnel.allow);
    if (!parsed) {
      parsed = parseAllowList(tunnel.allow);
      this.#parsed.set(tunnel.allow, parsed);
    }
    const domain = emailDomain(e);
    for (const entry of parsed) {
      if (entry.kind === 'email' && entry.email === e) return true;
      if (entry.kind === 'domain' && entry.domain === domain) return true;
    }
    for (const entry of parsed) {
      if (entry.kind !== 'group') continue;
      // A group deleted after the tunnel started simply matches nobody.
      const members = await this.#groups.members(tunnel.ownerAccountId, entry.name);
      if (members?.has(e)) return true;
    }
    return false;
  }
}
