import { exportJWK, generateKeyPair } from 'jose';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

// oidc-provider ships no types; this is the subset the test OP uses.
interface KoaCtx {
  path: string;
  req: unknown;
  res: unknown;
  status: number;
  redirect(url: string): void;
}
interface GrantLike {
  addOIDCScope(s: string): void;
  addOIDCClaims(c: string[]): void;
  save(): Promise<string>;
}
interface ProviderLike {
  proxy: boolean;
  use(mw: (ctx: KoaCtx, next: () => Promise<void>) => Promise<void>): void;
  callback(): (req: unknown, res: unknown) => void;
  interactionDetails(req: unknown, res: unknown): Promise<{ prompt: { name: string; details: unknown }; session?: { accountId: string }; grantId?: string; params: Record<string, unknown> }>;
  interactionResult(req: unknown, res: unknown, result: unknown, opts?: { mergeWithLastSubmission?: boolean }): Promise<string>;
  Grant: { new (o: { accountId: string; clientId: string }): GrantLike; find(id: string): Promise<GrantLike | undefined> };
}
type ProviderCtor = new (issuer: string, config: Record<string, unknown>) => ProviderLike;

// A real OpenID provider (oidc-provider) on 127.0.0.1:0 with one static confidential client
// and an auto-login interaction: whoever is in `op.nextUser` is signed in and consents at
// once, so tests (and a headless browser) go through the real redirects, PKCE, state, nonce,
// code exchange and ID token validation without a login form.

export interface TestOp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** The email the next login signs in as. */
  nextUser: string;
  /** Whether the next login's email is verified. */
  nextVerified: boolean;
  /** Groups per email, sent (with scope "groups") as `groups` and as `realm_access.roles` (Keycloak's shape). */
  groups: Map<string, string[]>;
  close(): Promise<void>;
}

/**
 * `redirectUris` may be a function, read when the OP handles its first request: a relay
 * process that needs the OP's URL at start and picks its own ports can register its
 * callback after both are up.
 */
export async function startOidcProvider(opts: { redirectUris: string[] | (() => string[]) }): Promise<TestOp> {
  const server: Server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: 'test', alg: 'RS256', use: 'sig' };
  const state = { nextUser: 'alice@example.com', nextVerified: true };
  const verified = new Map<string, boolean>();
  const groups = new Map<string, string[]>();

  const moduleName = 'oidc-provider';
  const { default: Provider } = (await import(moduleName)) as { default: ProviderCtor };
  const make = (redirectUris: string[]): ProviderLike => {
    const provider = new Provider(issuer, {
      clients: [{ client_id: 'tunn', client_secret: 'tunn-test-secret', redirect_uris: redirectUris, grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic' }],
      pkce: { required: () => true },
      // Like Keycloak: every code exchange also brings a refresh token (no offline_access dance).
      issueRefreshToken: async () => true,
      features: { devInteractions: { enabled: false } },
      interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/auto/${interaction.uid}` },
      claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups', 'realm_access'] },
      conformIdTokenClaims: false,
      jwks: { keys: [jwk] },
      cookies: { keys: ['tunn-test-cookie-key'] },
      ttl: { Interaction: 600, Session: 3600, Grant: 3600, AuthorizationCode: 60, AccessToken: 600, IdToken: 600 },
      async findAccount(_ctx: unknown, sub: string) {
        const g = groups.get(sub) ?? [];
        return { accountId: sub, claims: async () => ({ sub, email: sub, email_verified: verified.get(sub) ?? true, name: sub.split('@')[0], groups: g, realm_access: { roles: g } }) };
      },
    });
    provider.proxy = false;
  
    provider.use(async (ctx, next) => {
      const m = /^\/auto\/([^/]+)$/.exec(ctx.path);
      if (!m) return next();
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      let result: Record<string, unknown>;
      if (details.prompt.name === 'login') {
        verified.set(state.nextUser, state.nextVerified);
        result = { login: { accountId: state.nextUser } };
      } else {
        const accountId = details.session!.accountId;
        const grant = details.grantId ? (await provider.Grant.find(details.grantId))! : new provider.Grant({ accountId, clientId: String(details.params.client_id) });
        const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
        if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
        if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
        result = { consent: { grantId: await grant.save() } };
      }
      const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
      ctx.status = 303;
      ctx.redirect(returnTo);
    });
    return provider;
  };

  let handler: ((req: unknown, res: unknown) => void) | undefined;
  server.on('request', (req, res) => {
    handler ??= make(typeof opts.redirectUris === 'function' ? opts.redirectUris() : opts.redirectUris).callback();
    handler(req, res);
  });
  return {
    issuer,
    clientId: 'tunn',
    clientSecret: 'tunn-test-secret',
    groups,
    get nextUser() {
      return state.nextUser;
    },
    set nextUser(v: string) {
      state.nextUser = v;
    },
    get nextVerified() {
      return state.nextVerified;
    },
    set nextVerified(v: boolean) {
      state.nextVerified = v;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Follows redirects on the OP with a cookie jar until the browser would leave it for
 * `stopAt` (the relay's callback); returns that URL. A fetch-based stand-in for a browser
 * on the OP's side only.
 */
export async function followOp(start: string, stopAt: string): Promise<URL> {
  const jar = new Map<string, string>();
  let url = new URL(start);
  for (let i = 0; i < 20; i++) {
    if (url.href.startsWith(stopAt)) return url;
    const res = await fetch(url, { redirect: 'manual', headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '), accept: 'text/html' } });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
    }
    await res.arrayBuffer();
    const loc = res.headers.get('location');
    if (!loc) throw new Error(`the OP answered ${res.status} at ${url.pathname} without a redirect`);
    url = new URL(loc, url);
  }
  throw new Error('too many redirects on the OP');
}
