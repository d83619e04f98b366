import type { AlertHook } from '../certs/alerts.ts';
import type { CertDecision } from '../certs/decision.ts';
import { certEventLog, recordCertEvent } from '../certs/events.ts';
import type { CertLifecycle, RetryState } from '../certs/hooks.ts';
import { storeLocker } from '../certs/kysely-locker.ts';
import { KyselyCertStorage } from '../certs/kysely-storage.ts';
import type { ProbeResult } from '../certs/probe.ts';
import type { CertStorage, Locker } from '../certs/storage.ts';
import { nowIso } from '../lib/ids.ts';
import type { Logger } from '../lib/logger.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { Store } from '../store/store.ts';
import { domainByName, listDomains, updateDomainTls, type Domain } from './records.ts';

// Custom domains and their certificates (seed 001 lifecycle columns). Each custom domain D is
// served by one wildcard `*.D` (seed 002). The certificate manager knows nothing of domains:
// it asks the decision function which certificate a name gets, and reports every change to
// the lifecycle parties; this file is the custom-domain party, keeping the domain's columns
// (tls_status, certificate_ref, back-off) in step with its certificate.

/** One wildcard per custom domain (seed 002): `*.D` covers every tunnel on D. */
export function customDomainDecision(domain: string): CertDecision {
  return { name: `*.${domain}`, names: [`*.${domain}`], domain };
}

/** Whether the relay serves a custom domain with its own certificates: verified and terminating. */
export function servesCertificate(d: Domain): boolean {
  return Boolean(d.verifiedAt) && d.tlsMode === 'terminate';
}

/**
 * For relayDecisionFunc's customDomain: the wildcard of a verified, terminating custom domain; one
 * indexed lookup. A domain whose TLS ends at agents gets no wildcard; with --allow-relay-fallback,
 * a live tunnel's own name (`isLiveHost`) gets a per-name certificate for the fallback.
 */
export function customDomainDecider(store: Store, isLiveHost?: (host: string) => boolean): (parent: string, servername?: string) => Promise<CertDecision | undefined> {
  return async (parent, servername) => {
    const d = await domainByName(store, parent);
    if (!d) return undefined;
    if (servesCertificate(d)) return customDomainDecision(d.domain);
    if (d.verifiedAt && d.tlsMode === 'agent' && d.allowRelayFallback && servername && isLiveHost?.(servername)) return { name: servername, names: [servername] };
    return undefined;
  };
}

/** The domain a certificate key name belongs to (`*.D` → D), if it is a custom domain's. */
const subjectOf = (name: string): string | undefined => (name.startsWith('*.') ? name.slice(2) : undefined);

export function domainCertLifecycle(store: Store): CertLifecycle {
  return {
    async onStateChange(c) {
      if (c.kind === 'retry_reset') return updateDomainTls(store, c.subject, { cert_next_retry_at: null, cert_failure_count: 0 });
      const domain = c.decision.domain;
      if (!domain) return;
      switch (c.kind) {
        case 'obtaining':
          return updateDomainTls(store, domain, { tls_status: 'pending_issue' });
        case 'issued':
          return updateDomainTls(store, domain, { tls_status: 'issued', certificate_ref: c.cert.id, tls_not_after: nowIso(c.cert.notAfter), tls_last_error: null, cert_failure_count: 0, cert_next_retry_at: null });
        case 'failed':
          return updateDomainTls(store, domain, { tls_status: 'tls_error', tls_last_error: c.error, cert_failure_count: c.failures, cert_next_retry_at: c.nextRetryAt === null ? null : nowIso(c.nextRetryAt) });
        case 'expiring': {
          const row = await domainByName(store, domain);
          if (row?.tlsStatus === 'issued') await updateDomainTls(store, domain, { tls_status: 'expiring' });
        }
      }
    },
    async retryState(d): Promise<RetryState | undefined> {
      const row = d.domain ? await domainByName(store, d.domain) : undefined;
      if (!row) return undefined;
      return { failures: row.certFailureCount, nextAt: row.certNextRetryAt ? Date.parse(row.certNextRetryAt) : null, policy: row.certFailurePolicy, lastError: row.tlsLastError };
    },
    async forStored(name, names) {
      const domain = subjectOf(name);
      const row = domain ? await domainByName(store, domain) : undefined;
      if (!row) return undefined;
      return servesCertificate(row) ? { name, names, domain: row.domain } : null;
    },
    async waiting() {
      return (await listDomains(store))
        .filter((row) => servesCertificate(row) && !row.certificateRef && (row.tlsStatus === 'tls_error' || row.tlsStatus === 'pending_issue'))
        .map((row) => customDomainDecision(row.domain));
    },
    async describe(name) {
      const domain = subjectOf(name);
      const row = domain ? await domainByName(store, domain) : undefined;
      return row && { subject: row.domain, status: row.tlsStatus, lastError: row.tlsLastError, nextRetryAt: row.certNextRetryAt };
    },
  };
}

/** Where the relay keeps certificates: its database, a lock fit for it, custom domains' columns and the event log. */
export function relayCertBackends(store: Store, box: SecretBox, logger?: Logger): { storage: CertStorage; locker: Locker; lifecycle: CertLifecycle[] } {
  return { storage: new KyselyCertStorage(store, box), locker: storeLocker(store, logger), lifecycle: [domainCertLifecycle(store), certEventLog(store)] };
}

/**
 * Records a drift-probe result (certs/probe.ts): a custom domain's check time, served expiry and
 * probe error; an event when the error changed; an alert on drift.
 */
export function probeRecorder(store: Store, onAlert?: AlertHook): (r: ProbeResult, now: number) => Promise<void> {
  return async (r, now) => {
    const domain = subjectOf(r.name);
    const row = domain ? await domainByName(store, domain) : undefined;
    const label = row?.domain ?? r.name;
    if (row) {
      await updateDomainTls(store, row.domain, {
        tls_last_checked_at: nowIso(now),
        ...(r.servedNotAfter ? { tls_not_after: r.servedNotAfter } : {}),
        // An issuance error (tls_error) stays until the manager succeeds; the probe clears only its own.
        ...(r.error ? { tls_last_error: r.error } : row.tlsStatus === 'tls_error' ? {} : { tls_last_error: null }),
      });
    }
    const changed = (row?.tlsLastError ?? null) !== (r.error ?? null);
    if (r.error && changed) {
      await recordCertEvent(store, { domain: label, kind: r.drift ? 'probe_drift' : 'probe_error', message: r.error, detail: { servername: r.servername } }, now);
      if (r.drift) await onAlert?.({ kind: 'probe_drift', domain: label, message: r.error, notAfter: r.servedNotAfter, at: nowIso(now) });
    }
  };
}
