import * as acme from 'acme-client';
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';

// acme-client talks HTTPS through one shared axios instance, so its settings are process-wide:
// the CAs trusted for ACME servers (the public roots plus every extra CA an issuer asked for,
// `--acme-ca`, e.g. Pebble's) and its own retry of 429/5xx/connection errors. Nothing changes
// at import: an issuer applies what it needs when it is created (configureAcmeHttp), and
// applying the same settings again changes nothing.

export interface AcmeHttpSettings {
  /** An extra CA (PEM) to trust for ACME servers' HTTPS; adding one never removes trust in another. */
  caPem?: string;
  /**
   * acme-client retries 429/5xx/connection errors on its own, waiting `defaultDelaySeconds ×
   * attempt` (5 s by default, ×5 attempts: over a minute against a CA that is down). The cert
   * manager has its own retry schedule, so a relay lowers these; tests do too. The last
   * issuer created sets them for the process.
   */
  retry?: { maxAttempts: number; defaultDelaySeconds: number };
}

let trusted = new Set<string>();

export function configureAcmeHttp(s: AcmeHttpSettings): void {
  if (s.caPem && !trusted.has(s.caPem)) {
    trusted = new Set([...trusted, s.caPem]);
    acme.axios.defaults.httpsAgent = new Agent({ ca: [...rootCertificates, ...trusted] });
  }
  if (s.retry) {
    const settings = (acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number; retryDefaultDelay: number } }).acmeSettings;
    settings.retryMaxAttempts = s.retry.maxAttempts;
    settings.retryDefaultDelay = s.retry.defaultDelaySeconds;
  }
}

/** The agent acme-client uses now (with every CA configured so far), for a direct request to the same server. */
export function acmeHttpsAgent(): Agent | undefined {
  return acme.axios.defaults.httpsAgent as Agent | undefined;
}
