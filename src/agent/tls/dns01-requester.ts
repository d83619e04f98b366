import type { AuthzInfo, ChallengeInfo, ChallengeSolver } from '../../acme/solver.ts';
import { normalizeHost } from '../../lib/host.ts';

// DNS-01 for names under the relay's zone: the agent cannot write to the relay's DNS, so it
// asks the relay to publish `_acme-challenge.<name>` TXT records (phase 2: a control-stream
// message; the relay's half is src/dns/agent-dns01.ts, which publishes only for names that
// agent holds and removes them after). The relay answers once the record is served.

/** Asks whoever serves the zone to publish / remove one TXT value. */
export interface Dns01Requester {
  present(recordName: string, value: string): Promise<void>;
  cleanup(recordName: string, value: string): Promise<void>;
}

/** A DNS-01 solver (src/acme/solver.ts contract) that goes through a Dns01Requester. */
export class RequestedDns01Solver implements ChallengeSolver {
  readonly type = 'dns-01' as const;
  readonly #requester: Dns01Requester;

  constructor(requester: Dns01Requester) {
    this.#requester = requester;
  }

  async present(authz: AuthzInfo, _c: ChallengeInfo, keyAuthorization: string): Promise<void> {
    await this.#requester.present(`_acme-challenge.${normalizeHost(authz.identifier.value)}`, keyAuthorization);
  }

  async cleanup(authz: AuthzInfo, _c: ChallengeInfo, keyAuthorization: string): Promise<void> {
    await this.#requester.cleanup(`_acme-challenge.${normalizeHost(authz.identifier.value)}`, keyAuthorization);
  }
}
