import * as acme from 'acme-client';
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';

// acme-client talks HTTPS through one shared axios instance, so the CAs trusted for ACME
// servers are process-wide: the public roots plus every extra CA any issuer asked for
// (`--acme-ca`, e.g. Pebble's). Adding a CA never removes trust in another.

const extra = new Set<string>();

export function trustAcmeCa(pem: string): void {
  if (extra.has(pem)) return;
  extra.add(pem);
  acme.axios.defaults.httpsAgent = new Agent({ ca: [...rootCertificates, ...extra] });
}

/**
 * acme-client retries 429/5xx/connection errors on its own, waiting `defaultDelaySeconds ×
 * attempt` (5 s by default, ×5 attempts: over a minute against a CA that is down). The cert
 * manager has its own retry schedule, so the relay may lower these; tests do.
 */
export function setAcmeHttpRetry(opts: { maxAttempts: number; defaultDelaySeconds: number }): void {
  const settings = (acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number; retryDefaultDelay: number } }).acmeSettings;
  settings.retryMaxAttempts = opts.maxAttempts;
  settings.retryDefaultDelay = opts.defaultDelaySeconds;
}
