import type { Dns01Provider } from '../dns/dns01-provider.ts';
import { isInZone, normalizeName } from '../dns/zone.ts';
import { TunnError } from '../lib/errors.ts';
import type { AuthzInfo, ChallengeInfo, ChallengeSolver } from './solver.ts';

// DNS-01 (RFC 8555 8.4) through a Dns01Provider: the relay's own zone, or the operator's DNS
// (RFC 2136, Cloudflare) with the relay's DNS server off. For a name in the relay's zone the TXT
// goes at `_acme-challenge.<name>` directly; for a customer domain D the customer has set
// `_acme-challenge.D CNAME <acme-id>._acme.<zone>` once, and the TXT goes at the target.
// A wildcard and its apex validate at the same name: two TXT values live side by side.

export interface Dns01Options {
  /** Where the TXT records go: the relay's zone, or an RFC 2136 / Cloudflare provider. */
  txt: Dns01Provider;
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
    const name = await this.recordName(authz.identifier.value);
    await this.#opts.txt.present(name, keyAuthorization);
    // Answered only once the CA can see it: a provider's servers may lag its API.
    await this.#opts.txt.waitVisible(name, keyAuthorization);
  }

  async cleanup(authz: AuthzInfo, _challenge: ChallengeInfo, keyAuthorization: string): Promise<void> {
    await this.#opts.txt.cleanup(await this.recordName(authz.identifier.value), keyAuthorization);
  }
}
