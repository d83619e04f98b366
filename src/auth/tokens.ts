import { decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type JWK, type CryptoKey as JoseKey } from 'jose';
import { randomUUID } from 'node:crypto';
import type { Clock } from '../lib/clock.ts';
import { TunnError } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { Store } from '../store/store.ts';

// Every token the relay issues is a JWT with a `jti` that has a row in `tokens`; a token is
// accepted only while its row exists and is not revoked, so revocation takes effect on the
// next use. Signing keys live in the store (private halves sealed) and rotate: new tokens are
// signed with the newest key, older keys keep verifying until they are retired.

export type TokenKind = 'agent' | 'pat' | 'session' | 'refresh' | 'assertion';

export interface TokenClaims {
  jti: string;
  sub: string; // account id
  kind: TokenKind;
  email?: string;
  exp?: number;
  [k: string]: unknown;
}

interface LoadedKey {
  kid: string;
  alg: string;
  privateKey: JoseKey;
  publicKey: JoseKey;
  publicJwk: JWK;
  retired: boolean;
}

const ALG = 'ES256';

/** The id of the key that signed `token` (its protected header's kid), or undefined when it has none or is not a JWT. */
export function tokenKid(token: string): string | undefined {
  try {
    const kid = decodeProtectedHeader(token).kid;
    return typeof kid === 'string' ? kid : undefined;
  } catch {
    return undefined;
  }
}

export class TokenService {
  readonly #store: Store;
  readonly #box: SecretBox;
  readonly #clock: Clock;
  readonly #issuer: string;
  #keys = new Map<string, LoadedKey>();
  #current: LoadedKey | undefined;

  constructor(opts: { store: Store; box: SecretBox; clock: Clock; issuer: string }) {
    this.#store = opts.store;
    this.#box = opts.box;
    this.#clock = opts.clock;
    this.#issuer = opts.issuer;
  }

  get issuer(): string {
    return this.#issuer;
  }

  /** Loads the signing keys, creating the first one on a new store. */
  async init(): Promise<void> {
    await this.#loadKeys();
    if (!this.#current) await this.rotateKeys();
  }

  #loadedAt = 0;

  /**
   * Reloads the keys from the store if they were loaded more than a second ago: picks up keys
   * rotated or retired elsewhere (the CLI, another relay) without letting unknown-kid tokens
   * trigger a store read per request.
   */
  async reloadIfStale(): Promise<void> {
    if (Math.abs(this.#clock.now() - this.#loadedAt) < 1000) return;
    await this.#loadKeys();
  }

  /** Reloads the keys now (another relay or the CLI rotated or retired one: NOTIFY said so). */
  async reload(): Promise<void> {
    await this.#loadKeys();
  }

  /** Whether this service knows `kid` as retired (undefined: it does not know the key). */
  isRetired(kid: string): boolean | undefined {
    return this.#keys.get(kid)?.retired;
  }

  async #loadKeys(): Promise<void> {
    this.#loadedAt = this.#clock.now();
    const rows = await this.#store.db.selectFrom('signing_keys').selectAll().orderBy('created_at', 'asc').execute();
    const keys = new Map<string, LoadedKey>();
    let current: LoadedKey | undefined;
    for (const r of rows) {
      const privJwk = JSON.parse(this.#box.openString(r.private_sealed, `signing-key:${r.kid}`)) as JWK;
      const publicJwk = JSON.parse(r.public_jwk) as JWK;
      const k: LoadedKey = {
        kid: r.kid,
        alg: r.alg,
        privateKey: (await importJWK(privJwk, r.alg)) as JoseKey,
        publicKey: (await importJWK(publicJwk, r.alg)) as JoseKey,
        publicJwk,
        retired: r.retired_at !== null,
      };
      keys.set(r.kid, k);
      if (!k.retired) current = k;
    }
    this.#keys = keys;
    this.#current = current;
  }

  /** Adds a new signing key and makes it current; existing tokens stay valid. */
  async rotateKeys(): Promise<string> {
    const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true });
    const kid = randomUUID();
    const privJwk = await exportJWK(privateKey);
    const pubJwk = { ...(await exportJWK(publicKey)), kid, alg: ALG, use: 'sig' };
    await this.#store.db
      .insertInto('signing_keys')
      .values({
        kid,
        alg: ALG,
        private_sealed: this.#box.seal(JSON.stringify(privJwk), `signing-key:${kid}`),
        public_jwk: JSON.stringify(pubJwk),
        created_at: nowIso(this.#clock.now()),
        retired_at: null,
      })
      .execute();
    await this.#loadKeys();
    return kid;
  }

  /** The key new tokens are signed with (the newest one not retired). */
  get signingKid(): string | undefined {
    return this.#current?.kid;
  }

  /** Retires a key: tokens signed with it stop verifying. The signing key cannot be retired: rotate first. */
  async retireKey(kid: string): Promise<void> {
    await this.#loadKeys();
    if (kid === this.#current?.kid) throw new TunnError('CONFLICT', `${kid} is the signing key (new tokens are signed with it): rotate first (\`tunn relay keys rotate\`), then retire it`);
    await this.#store.db.updateTable('signing_keys').set({ retired_at: nowIso(this.#clock.now()) }).where('kid', '=', kid).execute();
    await this.#loadKeys();
  }

  /** The public keys, for /.well-known/jwks.json. */
  jwks(): { keys: JWK[] } {
    return { keys: [...this.#keys.values()].filter((k) => !k.retired).map((k) => k.publicJwk) };
  }

  /**
   * Issues a token of `kind` for the account and records its jti. `ttlSeconds` undefined =
   * no expiry (agent tokens and personal access tokens live until revoked).
   */
  async issue(opts: { accountId: string; kind: TokenKind; label?: string; email?: string; ttlSeconds?: number; extra?: Record<string, unknown>; record?: boolean }): Promise<{ token: string; jti: string; expiresAt: number | null }> {
    const key = this.#current;
    if (!key) throw new TypeError('TokenService.init() was not called');
    const jti = randomUUID();
    const now = Math.floor(this.#clock.now() / 1000);
    const exp = opts.ttlSeconds === undefined ? null : now + opts.ttlSeconds;
    let jwt = new SignJWT({ kind: opts.kind, ...(opts.email ? { email: opts.email } : {}), ...(opts.extra ?? {}) })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .setJti(jti)
      .setSubject(opts.accountId)
      .setIssuer(this.#issuer)
      .setIssuedAt(now);
    if (exp !== null) jwt = jwt.setExpirationTime(exp);
    const token = await jwt.sign(key.privateKey);
    if (opts.record !== false) {
      await this.#store.db
        .insertInto('tokens')
        .values({
          jti,
          account_id: opts.accountId,
          kind: opts.kind,
          label: opts.label ?? '',
          created_at: nowIso(this.#clock.now()),
          expires_at: exp === null ? null : nowIso(exp * 1000),
          last_used_at: null,
          revoked_at: null,
        })
        .execute();
    }
    return { token, jti, expiresAt: exp === null ? null : exp * 1000 };
  }

  /**
   * Verifies signature, issuer, expiry and kind, then checks the revocation state of the jti.
   * Throws AUTH_INVALID_TOKEN (malformed, foreign-signed, expired, wrong kind) or
   * AUTH_TOKEN_REVOKED.
   */
  async verify(token: string, kinds: readonly TokenKind[], opts: { checkRecord?: boolean } = {}): Promise<TokenClaims> {
    let payload: Record<string, unknown>;
    try {
      const res = await jwtVerify(
        token,
        async (header) => {
          let k = header.kid ? this.#keys.get(header.kid) : undefined;
          if (!k && header.kid) {
            // A key another relay (or `tunn relay keys rotate`) added since we loaded them.
            await this.reloadIfStale();
            k = this.#keys.get(header.kid);
          }
          if (!k || k.retired) throw new Error('unknown signing key');
          return k.publicKey;
        },
        { issuer: this.#issuer, algorithms: [ALG], currentDate: new Date(this.#clock.now()) },
      );
      payload = res.payload as Record<string, unknown>;
    } catch (err) {
      throw new TunnError('AUTH_INVALID_TOKEN', `the token is not valid for this relay (${(err as Error).message}): sign in again with \`tunn login\`, or create a new token`, { cause: err });
    }
    const kind = payload.kind as TokenKind;
    if (typeof payload.jti !== 'string' || typeof payload.sub !== 'string' || !kinds.includes(kind)) {
      throw new TunnError('AUTH_INVALID_TOKEN', `the token is not valid here: expected a ${kinds.join(' or ')} token`);
    }
    if (opts.checkRecord !== false) {
      const row = await this.#store.db.selectFrom('tokens').select(['revoked_at', 'account_id']).where('jti', '=', payload.jti).executeTakeFirst();
      if (!row || row.revoked_at !== null) {
        throw new TunnError('AUTH_TOKEN_REVOKED', 'the token has been revoked; create a new one');
      }
    }
    return payload as TokenClaims;
  }

  /** Revokes by jti; returns false when no such token belongs to the account. */
  async revoke(jti: string, accountId?: string): Promise<boolean> {
    let q = this.#store.db.updateTable('tokens').set({ revoked_at: nowIso(this.#clock.now()) }).where('jti', '=', jti).where('revoked_at', 'is', null);
    if (accountId) q = q.where('account_id', '=', accountId);
    const res = await q.executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async touch(jti: string): Promise<void> {
    await this.#store.db.updateTable('tokens').set({ last_used_at: nowIso(this.#clock.now()) }).where('jti', '=', jti).execute();
  }
}
