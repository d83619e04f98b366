import type { SecureContext } from 'node:tls';
import type { ManagedCertificate } from '../certs/managed.ts';
import { errorMessage, TunnError } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { Logger } from '../lib/logger.ts';

// The relay's own certificate at start-up. A static or dev-CA certificate is there, or the
// configuration is wrong and the relay stops with the reason. An ACME certificate may not be
// there yet (the CA is down, the DNS delegation is not in place): the relay starts anyway, as
// Caddy does; handshakes for its names fail with a TLS alert meanwhile (the certificate manager
// logs why, with its next attempt), and the certificate is taken when it comes, announced by a
// `certificate` event.

/** The part of a certificate source this needs (see CertSource in relay.ts). */
export interface OwnCertificateSource {
  contextFor(servername: string | undefined): SecureContext | undefined | Promise<SecureContext | undefined>;
  /** Keeps a certificate for the name, obtaining it in the background (ACME); absent for static sources. */
  manage?(servername: string): Promise<ManagedCertificate>;
}

export type OwnCertificateState = 'ready' | 'pending';

/**
 * Settles the relay's certificate for `domain` without waiting for a CA: 'ready' when one is
 * served now, 'pending' when it is being obtained in the background. `onContext` gets the
 * context once there is one (at once, or when the certificate arrives).
 */
export async function startOwnCertificate(certs: OwnCertificateSource, domain: string, logger: Logger, onContext: (ctx: SecureContext) => void): Promise<OwnCertificateState> {
  const take = async (): Promise<boolean> => {
    const ctx = await certs.contextFor(domain);
    if (ctx) onContext(ctx);
    return ctx !== undefined;
  };
  if (!certs.manage) {
    if (await take()) return 'ready';
    throw new TunnError('CONFIG_INVALID', `no TLS certificate for the relay's own name ${domain}: pass --tls-cert and --tls-key files that cover it, or get certificates with --acme-directory`);
  }
  const managed = await certs.manage(domain);
  if (managed.ready && (await take())) return 'ready';
  logger.warn(
    { event: 'certificate', state: 'pending', domain, certificate: managed.name },
    `no certificate for ${domain} yet: the relay requests it in the background and retries with back-off; until it arrives, TLS for ${domain} fails (agents keep retrying)`,
  );
  void managed.arrived.then(
    async (cert) => {
      if (!cert || !(await take())) return;
      logger.info(
        { event: 'certificate', state: 'ready', domain, certificate: managed.name, notAfter: nowIso(cert.notAfter) },
        `the relay's certificate for ${domain} arrived (valid until ${nowIso(cert.notAfter)}): agents and visitors can connect`,
      );
    },
    (err: unknown) => logger.error({ domain, err: errorMessage(err) }, `obtaining the relay's certificate for ${domain} stopped`),
  );
  return 'pending';
}
