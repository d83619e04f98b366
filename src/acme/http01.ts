import { normalizeHost } from '../lib/host.ts';
import { ACME_TOKEN, type SharedChallenges } from './shared-challenges.ts';
import type { AuthzInfo, ChallengeInfo, ChallengeSolver } from './solver.ts';

// HTTP-01 (RFC 8555 8.3): the CA fetches http://<name>/.well-known/acme-challenge/<token>
// on port 80. The relay's plain-HTTP listener asks respond() first for every request.
// A token is answered only at the exact path, only for the host it was issued for, and only
// while presented. In a cluster (`shared`), the challenge also goes to the shared database and
// tokens presented by other relays are answered from it (respond() then returns a promise).

export const HTTP01_PREFIX = '/.well-known/acme-challenge/';

export class Http01Solver implements ChallengeSolver {
  readonly type = 'http-01' as const;
  /** token → the name it was issued for and its key authorization. */
  readonly #tokens = new Map<string, { name: string; keyAuthorization: string }>();
  readonly #shared: SharedChallenges | undefined;

  constructor(shared?: SharedChallenges) {
    this.#shared = shared;
  }

  async present(authz: AuthzInfo, challenge: ChallengeInfo, keyAuthorization: string): Promise<void> {
    const name = normalizeHost(authz.identifier.value);
    await this.#shared?.present({ type: 'http-01', name, token: challenge.token, keyAuthorization });
    this.#tokens.set(challenge.token, { name, keyAuthorization });
  }

  async cleanup(authz: AuthzInfo, challenge: ChallengeInfo): Promise<void> {
    this.#tokens.delete(challenge.token);
    await this.#shared?.cleanup({ type: 'http-01', name: normalizeHost(authz.identifier.value), token: challenge.token });
  }

  /**
   * The key authorization to send (as text/plain, status 200) for a request path and its Host
   * (normalised, without port), or undefined when the path is not a challenge presented for
   * that host (then route as usual). A promise only in a cluster, for a token not presented here.
   */
  respond(path: string, host: string): string | undefined | Promise<string | undefined> {
    if (!path.startsWith(HTTP01_PREFIX)) return undefined;
    const token = path.slice(HTTP01_PREFIX.length).split('?')[0]!;
    // Not a token (a slash, dots, percent-escapes, nothing): never looked up anywhere.
    if (!ACME_TOKEN.test(token)) return undefined;
    const h = normalizeHost(host);
    const local = this.#tokens.get(token);
    if (local) return local.name === h ? local.keyAuthorization : undefined;
    if (!this.#shared) return undefined;
    return this.#shared.lookup('http-01', token).then((list) => list?.find((c) => c.name === h)?.keyAuthorization);
  }
}
