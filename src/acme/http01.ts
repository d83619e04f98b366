import type { AuthzInfo, ChallengeInfo, ChallengeSolver } from './solver.ts';

// HTTP-01 (RFC 8555 8.3): the CA fetches http://<name>/.well-known/acme-challenge/<token>
// on port 80. The relay's plain-HTTP listener asks respond() first for every request.

export const HTTP01_PREFIX = '/.well-known/acme-challenge/';

export class Http01Solver implements ChallengeSolver {
  readonly type = 'http-01' as const;
  readonly #tokens = new Map<string, string>();

  async present(_authz: AuthzInfo, challenge: ChallengeInfo, keyAuthorization: string): Promise<void> {
    this.#tokens.set(challenge.token, keyAuthorization);
  }

  async cleanup(_authz: AuthzInfo, challenge: ChallengeInfo): Promise<void> {
    this.#tokens.delete(challenge.token);
  }

  /**
   * The key authorization to send (as text/plain, status 200) for a request path, or
   * undefined when the path is not a challenge this relay is presenting (then route as usual).
   */
  respond(path: string): string | undefined {
    if (!path.startsWith(HTTP01_PREFIX)) return undefined;
    const token = path.slice(HTTP01_PREFIX.length).split('?')[0]!;
    return this.#tokens.get(token);
  }
}
