import { systemClock, type Clock } from '../lib/clock.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { Store } from '../store/store.ts';
import { DeviceLogin } from './device.ts';
import { EventLog } from './events.ts';
import { Gate, type GateOptions } from './gate.ts';
import { GrantService } from './grants.ts';
import { GroupService } from './groups.ts';
import { IdpGroups, type GroupDirectory } from './idp-groups.ts';
import { Handoff } from './handoff.ts';
import { LoginCodes } from './login-codes.ts';
import { MagicLinks, type MagicLinkOptions } from './magic-link.ts';
import { OidcLogins, type LoginProviderConfig } from './oidc.ts';
import { Policy } from './policy.ts';
import { RateLimiter } from './rate-limit.ts';
import { SessionService } from './sessions.ts';
import type { TokenService } from './tokens.ts';

// The one object the relay builds for identity: every service wired to the same store,
// token service and clock. The relay passes `identity.gate` to its gateway and
// `createApiApp(identity)` to the requests for its own host.

export interface IdentityOptions {
  store: Store;
  /** Already init()-ed. */
  tokens: TokenService;
  clock?: Clock;
  /** The relay's public origin, e.g. https://tunn.example.com:8443 (login pages live there). */
  relayUrl: string;
  /** Whether a hostname (no port) belongs to this relay: a live tunnel, a zone host or a registered custom domain. Guards every redirect. */
  isServedHost: (hostname: string) => boolean;
  /** `tunn relay --dev`: enables the password-less dev login. Never in production. */
  dev?: boolean;
  /** OpenID Connect issuers and the GitHub/Google presets, in button order. */
  providers?: LoginProviderConfig[];
  /** Email magic links over SMTP. */
  magicLink?: Omit<MagicLinkOptions, 'codes' | 'clock' | 'relayUrl'>;
  /** Operators who see every account's security events. */
  adminEmails?: string[];
  sessionTtlSeconds?: number;
  groupCacheTtlMs?: number;
  /** IdP groups: how long membership is trusted (--idp-refresh), and a directory (LDAP) to ask by email. */
  idp?: { refreshMs?: number; directory?: GroupDirectory; onDirectoryError?: (err: unknown) => void; onUnconfirmed?: GateOptions['onIdpUnconfirmed'] };
  /** Seals the OIDC tokens kept to confirm IdP groups again (the relay's secret box); without it, those groups lapse at the bound. */
  box?: SecretBox;
  /** How long into a database outage the gate reuses each credential's last answer before 503 (gate.ts); default 30 s. */
  identityOutageWindowMs?: number;
  onError?: (err: unknown) => void;
}

export interface Identity {
  readonly options: IdentityOptions;
  readonly relayUrl: URL;
  readonly clock: Clock;
  readonly store: Store;
  readonly tokens: TokenService;
  readonly groups: GroupService;
  readonly grants: GrantService;
  readonly idpGroups: IdpGroups;
  readonly policy: Policy;
  readonly sessions: SessionService;
  readonly codes: LoginCodes;
  readonly handoff: Handoff;
  readonly events: EventLog;
  readonly rateLimiter: RateLimiter;
  readonly gate: Gate;
  readonly devices: DeviceLogin;
  readonly magic: MagicLinks | undefined;
  readonly oidc: OidcLogins;
  /** Writes pending event counts and closes the SMTP transport (the store is the caller's). */
  close(): Promise<void>;
}

export function createIdentity(opts: IdentityOptions): Identity {
  const clock = opts.clock ?? systemClock;
  const { store, tokens } = opts;
  const relayUrl = new URL(opts.relayUrl);
  const groups = new GroupService({ store, clock, cacheTtlMs: opts.groupCacheTtlMs });
  const grants = new GrantService({ store, clock });
  const policy = new Policy({ groups, grants, idpEnabled: () => idpGroups.enabled });
  const sessions = new SessionService({ store, clock, ttlSeconds: opts.sessionTtlSeconds });
  const codes = new LoginCodes({ store, clock });
  const handoff = new Handoff({ codes, sessions });
  const events = new EventLog({ store, clock, onError: opts.onError });
  const oidcSources = new Map((opts.providers ?? []).flatMap((p) => (p.type === 'oidc' && p.groupsClaim ? [[p.id ?? 'oidc', p.name ?? 'OpenID Connect'] as [string, string]] : [])));
  const oidc = new OidcLogins({ providers: opts.providers ?? [], codes, relayUrl: relayUrl.origin });
  const idpGroups = new IdpGroups({
    store,
    clock,
    events,
    refreshMs: opts.idp?.refreshMs,
    oidcSources,
    refreshOidc: (source, secrets) => oidc.refreshGroups(source, secrets),
    box: opts.box,
    directory: opts.idp?.directory,
    onDirectoryError: opts.idp?.onDirectoryError,
  });
  const rateLimiter = new RateLimiter({ clock });
  const gate = new Gate({ relayUrl: relayUrl.origin, store, tokens, sessions, handoff, policy, events, rateLimiter, clock, idpGroups, identityOutageWindowMs: opts.identityOutageWindowMs, onError: opts.onError, onIdpUnconfirmed: opts.idp?.onUnconfirmed });
  const devices = new DeviceLogin({ store, clock, tokens, relayUrl: relayUrl.origin });
  const magic = opts.magicLink ? new MagicLinks({ ...opts.magicLink, codes, clock, relayUrl: relayUrl.origin }) : undefined;
  async function close(): Promise<void> {
    await magic?.close();
    await events.flush();
  }
  return { options: opts, relayUrl, clock, store, tokens, groups, grants, idpGroups, policy, sessions, codes, handoff, events, rateLimiter, gate, devices, magic, oidc, close };
}
