import type * as acme from 'acme-client';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { SharedChallenge, SharedChallenges } from './shared-challenges.ts';
import type { AuthzInfo, ChallengeInfo, ChallengeSolver } from './solver.ts';
import { normalizeHost } from '../lib/host.ts';

// TLS-ALPN-01 (RFC 8737): the CA opens TLS to <name>:443 with ALPN `acme-tls/1` and expects
// a self-signed certificate carrying the acmeIdentifier extension. The relay's edge, on a
// ClientHello offering `acme-tls/1`, serves secureContext(servername) and negotiates acme-tls/1.
// In a cluster (`shared`), the key authorization also goes to the shared database, and a relay
// answering a name another relay presented builds the challenge certificate itself (its own
// fresh key: no key is stored or shared).

export const ACME_TLS_ALPN = 'acme-tls/1';

/** Challenge certificates built for other relays' challenges, kept at most this many. */
const BUILT_MAX = 64;

export class TlsAlpn01Solver implements ChallengeSolver {
  readonly type = 'tls-alpn-01' as const;
  readonly #contexts = new Map<string, { ctx: SecureContext; token: string }>();
  readonly #shared: SharedChallenges | undefined;
  /** `name\0keyAuthorization` → its challenge certificate, for challenges presented elsewhere. */
  readonly #built = new Map<string, Promise<SecureContext>>();

  constructor(shared?: SharedChallenges) {
    this.#shared = shared;
  }

  async present(authz: AuthzInfo, challenge: ChallengeInfo, keyAuthorization: string): Promise<void> {
    // Loaded here, not at import: every relay holds this solver, only an ACME relay presents.
    const { crypto } = await import('acme-client');
    const [key, cert] = await crypto.createAlpnCertificate(authz as acme.Authorization, keyAuthorization);
    const name = normalizeHost(authz.identifier.value);
    await this.#shared?.present({ type: 'tls-alpn-01', name, token: challenge.token, keyAuthorization });
    this.#contexts.set(name, { ctx: createSecureContext({ key, cert }), token: challenge.token });
  }

  async cleanup(authz: AuthzInfo, challenge: ChallengeInfo): Promise<void> {
    const name = normalizeHost(authz.identifier.value);
    if (this.#contexts.get(name)?.token === challenge.token) this.#contexts.delete(name);
    await this.#shared?.cleanup({ type: 'tls-alpn-01', name, token: challenge.token });
  }

  /** The challenge certificate for `servername` presented here, or undefined when none is. */
  secureContext(servername: string): SecureContext | undefined {
    return this.#contexts.get(normalizeHost(servername))?.ctx;
  }

  /**
   * The challenge certificate for `servername`, or undefined when none is being presented. A
   * promise only in a cluster, for a name not presented here (read from the shared database).
   */
  answer(servername: string): SecureContext | undefined | Promise<SecureContext | undefined> {
    const name = normalizeHost(servername);
    const local = this.#contexts.get(name)?.ctx;
    if (local || !this.#shared) return local;
    return this.#shared.lookup('tls-alpn-01', name).then((list) => (list?.length ? this.#build(list[list.length - 1]!) : undefined));
  }

  /** True while a challenge for `servername` is presented here, or was in the cluster's last read (the edge may then keep it local). */
  has(servername: string): boolean {
    const name = normalizeHost(servername);
    return this.#contexts.has(name) || !!this.#shared?.peek('tls-alpn-01', name)?.length;
  }

  /** Whether challenges presented by other relays are answered here (a relay of a cluster). */
  get shared(): boolean {
    return this.#shared !== undefined;
  }

  #build(c: SharedChallenge): Promise<SecureContext> {
    const key = `${c.name}\0${c.keyAuthorization}`;
    let p = this.#built.get(key);
    if (!p) {
      if (this.#built.size >= BUILT_MAX) this.#built.clear();
      p = (async () => {
        const { crypto } = await import('acme-client');
        const [certKey, cert] = await crypto.createAlpnCertificate({ identifier: { type: 'dns', value: c.name } } as acme.Authorization, c.keyAuthorization, await crypto.createPrivateEcdsaKey());
        return createSecureContext({ key: certKey, cert });
      })();
      p.catch(() => this.#built.delete(key));
      this.#built.set(key, p);
    }
    return p;
  }
}
