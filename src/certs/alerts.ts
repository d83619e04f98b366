import { errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import type { Store } from '../store/store.ts';
import { recordCertEvent } from './events.ts';

// Expiry and failure alerts: a log line, an event in the domain's log, and an optional
// webhook POST (JSON). An alert that cannot be delivered is logged, never thrown: alerting
// must not break issuance.

export interface CertAlert {
  kind: 'issue_failed' | 'expiring' | 'expired' | 'probe_drift' | 'external_error';
  /** The domain, or the certificate name for the relay's own names. */
  domain: string;
  message: string;
  notAfter?: string;
  at: string;
}

export type AlertHook = (alert: CertAlert) => void | Promise<void>;

export interface AlerterOptions {
  store: Store;
  logger?: Logger;
  webhookUrl?: string;
  /** Also called for each alert (e.g. to record a security/ops event). */
  onAlert?: AlertHook;
}

export function createAlerter(opts: AlerterOptions): AlertHook {
  return async (alert) => {
    opts.logger?.warn({ event: 'cert_alert', ...alert }, `certificate alert for ${alert.domain}: ${alert.message}`);
    await recordCertEvent(opts.store, { domain: alert.domain, kind: 'alert', message: alert.message, detail: { ...alert } }, Date.parse(alert.at)).catch((err) =>
      opts.logger?.error({ err: errorMessage(err) }, 'recording a certificate alert failed'),
    );
    if (opts.webhookUrl) {
      try {
        const res = await fetch(opts.webhookUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(alert), signal: AbortSignal.timeout(5000) });
        await res.body?.cancel();
        if (!res.ok) opts.logger?.warn({ status: res.status }, `alert webhook ${opts.webhookUrl} answered HTTP ${res.status}`);
      } catch (err) {
        opts.logger?.warn({ err: errorMessage(err) }, `posting an alert to ${opts.webhookUrl} failed`);
      }
    }
    try {
      await opts.onAlert?.(alert);
    } catch (err) {
      opts.logger?.warn({ err: errorMessage(err) }, 'the alert hook failed');
    }
  };
}
