import type * as acme from 'acme-client';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { AuthzInfo, ChallengeInfo, ChallengeSolver } from './solver.ts';
import { normalizeHost } from '../lib/host.ts';

// TLS-ALPN-01 (RFC 8737): the CA opens TLS to <name>:443 with ALPN `acme-tls/1` and expects
// a self-signed certificate carrying the acmeIdentifier extension. The relay's edge, on a
// ClientHello offering `acme-tls/1`, serves secureContext(servername) and negotiates acme-tls/1.

export const ACME_TLS_ALPN = 'acme-tls/1';

export class TlsAlpn01Solver implements ChallengeSolver {
  readonly type = 'tls-alpn-01' as const;
  readonly #contexts = new Map<string, { ctx: SecureContext; token: string }>();

  async present(authz: AuthzInfo, challenge: ChallengeInfo, keyAuthorization: string): Promise<void> {
    // Loaded here, not at import: every relay holds this solver, only an ACME relay presents.
    const { crypto } = await import('acme-client');
    const [key, cert] = await crypto.createAlpnCertificate(authz as acme.Authorization, keyAuthorization);
    this.#contexts.set(authz.identifier.value.toLowerCase(), { ctx: createSecureContext({ key, cert }), token: challenge.token });
  }

  async cleanup(authz: AuthzInfo, challenge: ChallengeInfo): Promise<void> {
    const name = authz.identifier.value.toLowerCase();
    if (this.#contexts.get(name)?.token === challenge.token) this.#contexts.delete(name);
  }

  /** The challenge certificate for `servername`, or undefined when none is being presented. */
  secureContext(servername: string): SecureContext | undefined {
    return this.#contexts.get(normalizeHost(servername))?.ctx;
  }

  /** True while a challenge for `servername` is presented (the edge may then keep it local). */
  has(servername: string): boolean {
    return this.#contexts.has(normalizeHost(servername));
  }
}
