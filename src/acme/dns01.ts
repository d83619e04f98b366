import type { TxtRecordStore } from '../dns/relay-zone.ts';
import { isInZone, normalizeName } from '../dns/zone.ts';
import { TunnError } from '../lib/errors.ts';
import type { AuthzInfo, ChallengeInfo, ChallengeSolver } from './solver.ts';

// DNS-01 (RFC 8555 8.4) through the relay's own zone. For a name in the relay's zone the TXT
// goes at `_acme-challenge.<name>` directly; for a customer domain D the customer has set
// `_acme-challenge.D CNAME <acme-id>._acme.<zone>` once, and the TXT goes at the target.
// A wildcard and its apex validate at the same name: two TXT values live side by side.

export interface Dns01Options {
  txt: TxtRecordStore;
  /** The acme id of the account owning customer domain `domain`, or undefined if none does. */
  acmeIdFor(domain: string): Promise<string | undefined>;
}

export class Dns01Solver implements ChallengeSolver {
  readonly type = 'dns-01' as const;
  readonly #opts: Dns01Options;

  constructor(opts: Dns01Options) {
    this.#opts = opts;
  }

  /** Where the TXT record for `domain` (an authorization's identifier, without `*.`) is written. */
  async recordName(domain: string): Promise<string> {
    const d = normalizeName(domain);
    const zone = this.#opts.txt.zone;
    if (isInZone(d, zone)) return `_acme-challenge.${d}`;
    const id = await this.#opts.acmeIdFor(d);
    if (!id) throw new TunnError('NOT_FOUND', `no account has registered ${d}, so there is no _acme delegation to answer its DNS-01 challenge`);
    return `${id.toLowerCase()}._acme.${zone}`;
  }

  async present(authz: AuthzInfo, _challenge: ChallengeInfo, keyAuthorization: string): Promise<void> {
    await this.#opts.txt.setTxt(await this.recordName(authz.identifier.value), keyAuthorization);
  }

  async cleanup(authz: AuthzInfo, _challenge: ChallengeInfo, keyAuthorization: string): Promise<void> {
    await this.#opts.txt.removeTxt(await this.recordName(authz.identifier.value), keyAuthorization);
  }
}
