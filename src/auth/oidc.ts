import type * as oc from 'openid-client';
import { TunnError, errorMessage } from '../lib/errors.ts';
import { randomToken } from '../lib/ids.ts';
import { parseEmail } from './emails.ts';
import { groupsFromClaims } from './idp-groups.ts';
import type { LoginCodes } from './login-codes.ts';
import { hashSecret } from './sessions.ts';

// Sign-in with an OpenID Connect issuer (discovery, PKCE, state and nonce) or GitHub's OAuth 2
// (GitHub is not an OIDC provider: authorize + token, then the verified primary address from
// /user/emails). Google is an ordinary OIDC issuer with a preset.
//
// The login state (PKCE verifier, nonce, return URL) lives in a one-time `oidc` login code
// whose value is the OAuth `state`; the browser that started the login holds a binding
// cookie whose hash the state row keeps, so a callback URL replayed in another browser fails.

export type LoginProviderConfig =
  | { type: 'oidc'; id?: string; name?: string; issuer: string; clientId: string; clientSecret: string; scopes?: string[]; requireVerifiedEmail?: boolean; /** Claim (or dotted path) with the user's groups, in the ID token or userinfo: --oidc-groups-claim. */ groupsClaim?: string }
  | { type: 'google'; clientId: string; clientSecret: string }
  | { type: 'github'; clientId: string; clientSecret: string; /** For tests and GitHub Enterprise. */ webUrl?: string; apiUrl?: string };

/** What confirms a sign-in's groups again later: the refresh token, else the access token (userinfo). */
export interface OidcSecrets {
  refreshToken?: string;
  accessToken?: string;
}

export interface LoginProvider {
  id: string;
  name: string;
}

export const OIDC_STATE_TTL_SECONDS = 600;

interface Resolved {
  id: string;
  name: string;
  cfg: LoginProviderConfig;
  config?: Promise<oc.Configuration>;
}

export function oidcCallbackPath(id: string): string {
  return `/login/oidc/${id}/callback`;
}

type OpenIdClient = typeof oc;

// openid-client is loaded only by a relay with a login provider configured (at configuration,
// so the first sign-in does not wait for it): a relay without OIDC never carries it.
const loadOpenIdClient = (): Promise<OpenIdClient> => import('openid-client');

function allowHttp(oc: OpenIdClient, url: string): ((c: oc.Configuration) => void)[] {
  // Plain-http issuers are only reachable on loopback (tests, a local IdP).
  const h = new URL(url).hostname;
  return url.startsWith('http:') && (h === '127.0.0.1' || h === 'localhost' || h === '[::1]' || h.endsWith('.localhost')) ? [oc.allowInsecureRequests] : [];
}

export class OidcLogins {
  readonly #codes: LoginCodes;
  readonly #relayUrl: string;
  readonly #providers = new Map<string, Resolved>();
  #client: Promise<OpenIdClient> | undefined;

  constructor(opts: { providers: LoginProviderConfig[]; codes: LoginCodes; relayUrl: string }) {
    this.#codes = opts.codes;
    this.#relayUrl = opts.relayUrl;
    for (const cfg of opts.providers) {
      const id = cfg.type === 'oidc' ? (cfg.id ?? 'oidc') : cfg.type;
      const name = cfg.type === 'oidc' ? (cfg.name ?? 'OpenID Connect') : cfg.type === 'google' ? 'Google' : 'GitHub';
      if (!/^[a-z0-9-]{1,32}$/.test(id)) throw new TunnError('CONFIG_INVALID', `login provider id "${id}": use lower-case letters, digits and -`);
      if (this.#providers.has(id)) throw new TunnError('CONFIG_INVALID', `login provider "${id}" is configured twice`);
      this.#providers.set(id, { id, name, cfg });
    }
    if (this.#providers.size) this.#lib().catch(() => {});
  }

  #lib(): Promise<OpenIdClient> {
    this.#client ??= loadOpenIdClient();
    return this.#client;
  }

  list(): LoginProvider[] {
    return [...this.#providers.values()].map(({ id, name }) => ({ id, name }));
  }

  has(id: string): boolean {
    return this.#providers.has(id);
  }

  /** The URL to send the browser to, and the binding for its login cookie. */
  async begin(id: string, returnTo: string): Promise<{ url: string; binding: string }> {
    const p = this.#provider(id);
    const config = await this.#config(p);
    const oc = await this.#lib();
    const verifier = oc.randomPKCECodeVerifier();
    const nonce = oc.randomNonce();
    const binding = randomToken(32);
    const state = await this.#codes.issue({ purpose: 'oidc', host: new URL(this.#relayUrl).host, ttlSeconds: OIDC_STATE_TTL_SECONDS, data: { provider: id, verifier, nonce, returnTo, binding: hashSecret(binding) } });
    const params: Record<string, string> = {
      redirect_uri: this.#relayUrl + oidcCallbackPath(id),
      code_challenge: await oc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    };
    if (p.cfg.type === 'github') params.scope = 'read:user user:email';
    else {
      params.scope = (p.cfg.type === 'oidc' && p.cfg.scopes?.length ? p.cfg.scopes : ['openid', 'email', 'profile']).join(' ');
      params.nonce = nonce;
    }
    return { url: oc.buildAuthorizationUrl(config, params).href, binding };
  }

  /**
   * Completes the login from the callback URL; returns the verified email and the return
   * URL. Throws LOGIN_FAILED with a message that says what went wrong.
   */
  async complete(id: string, callbackUrl: URL, bindingCookie: string | undefined): Promise<{ email: string; returnTo: string; groups?: string[]; secrets?: OidcSecrets }> {
    const p = this.#provider(id);
    const err = callbackUrl.searchParams.get('error');
    if (err) throw new TunnError('LOGIN_FAILED', `${p.name} refused the sign-in: ${err}${callbackUrl.searchParams.get('error_description') ? ` (${callbackUrl.searchParams.get('error_description')})` : ''}`);
    const state = callbackUrl.searchParams.get('state') ?? undefined;
    const row = await this.#codes.consume(state, 'oidc');
    if (!row || row.data.provider !== id) throw new TunnError('LOGIN_FAILED', 'this sign-in attempt expired or was already used; start again');
    if (!bindingCookie || hashSecret(bindingCookie) !== row.data.binding) throw new TunnError('LOGIN_FAILED', 'this sign-in was started in another browser; start again here');
    const config = await this.#config(p);
    // The redirect_uri sent to the token endpoint is the public one, whatever URL the relay
    // saw behind a proxy.
    const current = new URL(this.#relayUrl + oidcCallbackPath(id));
    current.search = callbackUrl.search;
    const oc = await this.#lib();
    let tokens: Awaited<ReturnType<typeof oc.authorizationCodeGrant>>;
    try {
      tokens = await oc.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: String(row.data.verifier),
        expectedState: state,
        ...(p.cfg.type === 'github' ? {} : { expectedNonce: String(row.data.nonce), idTokenExpected: true }),
      });
    } catch (e) {
      throw new TunnError('LOGIN_FAILED', `signing in with ${p.name} failed: ${errorMessage(e)}`, { cause: e });
    }
    const returnTo = String(row.data.returnTo ?? '/');
    if (p.cfg.type === 'github') return { email: await this.#githubEmail(p.cfg, tokens.access_token), returnTo };
    const found = await this.#oidcIdentity(p, config, tokens);
    if (!found.groups) return { ...found, returnTo };
    return { ...found, returnTo, secrets: { refreshToken: tokens.refresh_token, accessToken: tokens.access_token } };
  }

  /**
   * Asks the provider for the current groups of a signed-in user: a refresh-token grant when
   * the sign-in brought one, else userinfo with its access token. Throws LOGIN_FAILED saying
   * why (the session's groups then lapse and the visitor signs in again).
   */
  async refreshGroups(id: string, secrets: OidcSecrets): Promise<{ groups: string[]; secrets: OidcSecrets }> {
    const p = this.#provider(id);
    const claim = p.cfg.type === 'oidc' ? p.cfg.groupsClaim : undefined;
    if (!claim) throw new TunnError('LOGIN_FAILED', `${p.name} is not configured to send groups`);
    const config = await this.#config(p);
    const oc = await this.#lib();
    try {
      if (secrets.refreshToken) {
        const t = await oc.refreshTokenGrant(config, secrets.refreshToken);
        const next: OidcSecrets = { refreshToken: t.refresh_token ?? secrets.refreshToken, accessToken: t.access_token };
        const fromId = groupsFromClaims({ ...(t.claims() ?? {}) }, claim);
        if (fromId) return { groups: fromId, secrets: next };
        const info = await oc.fetchUserInfo(config, t.access_token, oc.skipSubjectCheck);
        return { groups: groupsFromClaims(info as Record<string, unknown>, claim) ?? [], secrets: next };
      }
      if (secrets.accessToken) {
        const info = await oc.fetchUserInfo(config, secrets.accessToken, oc.skipSubjectCheck);
        return { groups: groupsFromClaims(info as Record<string, unknown>, claim) ?? [], secrets };
      }
    } catch (e) {
      throw new TunnError('LOGIN_FAILED', `${p.name} did not confirm your groups: ${errorMessage(e)}`, { cause: e });
    }
    throw new TunnError('LOGIN_FAILED', `${p.name} gave no refresh or access token to confirm your groups with`);
  }

  async #oidcIdentity(p: Resolved, config: oc.Configuration, tokens: Awaited<ReturnType<typeof oc.authorizationCodeGrant>>): Promise<{ email: string; groups?: string[] }> {
    const requireVerified = p.cfg.type !== 'oidc' || p.cfg.requireVerifiedEmail !== false;
    const groupsClaim = p.cfg.type === 'oidc' ? p.cfg.groupsClaim : undefined;
    let claims: Record<string, unknown> = { ...(tokens.claims() ?? {}) };
    // Groups often live only in userinfo (the ID token is kept small); ask it when the ID token lacks them.
    if (typeof claims.email !== 'string' || (groupsClaim && groupsFromClaims(claims, groupsClaim) === undefined)) {
      try {
        const oc = await this.#lib();
        claims = { ...claims, ...(await oc.fetchUserInfo(config, tokens.access_token, String(claims.sub))) };
      } catch (e) {
        throw new TunnError('LOGIN_FAILED', `${p.name} did not say which email you signed in with: ${errorMessage(e)}`, { cause: e });
      }
    }
    const email = typeof claims.email === 'string' ? parseEmail(claims.email) : undefined;
    if (!email) throw new TunnError('LOGIN_FAILED', `${p.name} did not share an email address; allow the "email" scope and try again`);
    if (requireVerified && claims.email_verified !== true) throw new TunnError('LOGIN_FAILED', `${p.name} has not verified ${email}; verify it there first`);
    // A configured claim the provider did not send means "no groups", not a failed sign-in.
    return groupsClaim ? { email, groups: groupsFromClaims(claims, groupsClaim) ?? [] } : { email };
  }

  async #githubEmail(cfg: Extract<LoginProviderConfig, { type: 'github' }>, accessToken: string): Promise<string> {
    const api = cfg.apiUrl ?? 'https://api.github.com';
    let list: { email: string; primary: boolean; verified: boolean }[];
    try {
      const res = await fetch(`${api}/user/emails`, { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/vnd.github+json', 'user-agent': 'tunn' } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      list = (await res.json()) as typeof list;
    } catch (e) {
      throw new TunnError('LOGIN_FAILED', `reading your email addresses from GitHub failed: ${errorMessage(e)}`, { cause: e });
    }
    const pick = list.find((e) => e.primary && e.verified) ?? list.find((e) => e.verified);
    const email = pick ? parseEmail(pick.email) : undefined;
    if (!email) throw new TunnError('LOGIN_FAILED', 'your GitHub account has no verified email address; verify one on GitHub first');
    return email;
  }

  #provider(id: string): Resolved {
    const p = this.#providers.get(id);
    if (!p) throw new TunnError('NOT_FOUND', `there is no login provider "${id}" on this relay`);
    return p;
  }

  #config(p: Resolved): Promise<oc.Configuration> {
    if (!p.config) {
      const cfg = p.cfg;
      let pending: Promise<oc.Configuration>;
      if (cfg.type === 'github') {
        const web = cfg.webUrl ?? 'https://github.com';
        pending = this.#lib().then((oc) => {
          const config = new oc.Configuration({ issuer: web, authorization_endpoint: `${web}/login/oauth/authorize`, token_endpoint: `${web}/login/oauth/access_token` }, cfg.clientId, cfg.clientSecret);
          for (const f of allowHttp(oc, web)) f(config);
          return config;
        });
      } else {
        const issuer = cfg.type === 'google' ? 'https://accounts.google.com' : cfg.issuer;
        pending = this.#lib().then((oc) => oc.discovery(new URL(issuer), cfg.clientId, cfg.clientSecret, undefined, { execute: allowHttp(oc, issuer) })).catch((e: unknown) => {
          p.config = undefined; // retry discovery on the next login
          throw new TunnError('LOGIN_FAILED', `cannot reach the OpenID provider ${issuer}: ${errorMessage(e)}`, { cause: e });
        });
      }
      p.config = pending;
    }
    return p.config;
  }
}
