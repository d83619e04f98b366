export { ACME_DIRECTORIES, AcmeIssuer, resolveAcmeDirectory, type AcmeIssuerOptions } from './acme-issuer.ts';
export { createAlerter, type AlertHook, type AlerterOptions, type CertAlert } from './alerts.ts';
export { handleCertEvent, type CertEventDeps, type CertEventHeaders, type CertEventResponse } from './cert-events.ts';
export { CERT_EVENT_WINDOW_MS, certEventHeaders, ReplayGuard, signCertEvent, verifyCertEvent } from './cert-event-signature.ts';
export { customDomainDecision, relayDecisionFunc, type CertDecision, type DecisionFunc, type RelayDecisionOptions } from './decision.ts';
export { createCa, ensureDevCa, issueLeaf, DEV_CA_CERT_FILE, type KeyAndCert } from './dev-ca.ts';
export { verifyDomain, type VerifyDomainOptions } from './domain-verify.ts';
export {
  createDomain,
  deleteDomain,
  domainByName,
  domainsForAccount,
  listDomains,
  markDomainVerified,
  normalizeCustomDomain,
  setDomainShares,
  updateDomainShares,
  updateDomainTls,
  type CreateDomainInput,
  type Domain,
  type DomainTlsPatch,
} from './domains.ts';
export { listCertEvents, recordCertEvent, type CertEvent, type CertEventKind } from './events.ts';
export { FilesIssuer } from './files-issuer.ts';
export { certInfo, nameMatches, type IssuedCertificate, type Issuer, type RenewalHint } from './issuer.ts';
export { ManagedNames, type ManagedCertificate, type ManagedNamesHost } from './managed.ts';
export { CertManager, type CertListEntry, type CertManagerOptions } from './manager.ts';
export { CertProbe, defaultProbeName, type CertProbeOptions, type ProbeResult } from './probe.ts';
export { OrderBudget, RETRY_SCHEDULE_MS, retryDelay, type CertFailurePolicy } from './retry.ts';
export { SelfSignedIssuer } from './self-signed-issuer.ts';
export { CertStorage, secureContextFor, type CertificateSummary, type StoredCertificate } from './storage.ts';
