export { domainsVisibleTo, roleOf, sharedWith, type Caller, type DomainRole } from './access.ts';
export { addDomain, type AddDomainOptions } from './add.ts';
export { handleCertEvent, type CertEventDeps, type CertEventHeaders, type CertEventResponse } from './cert-events.ts';
export { customDomainDecider, customDomainDecision, domainCertLifecycle, probeRecorder, relayCertBackends, servesCertificate } from './cert-lifecycle.ts';
export { normalizeCustomDomain, normalizeShare } from './names.ts';
export {
  applyCertEventPatch,
  createDomain,
  deleteDomain,
  domainByName,
  domainsForAccount,
  listDomains,
  markDomainVerified,
  setDomainShares,
  updateDomainShares,
  updateDomainTls,
  type CreateDomainInput,
  type Domain,
  type DomainTlsPatch,
} from './records.ts';
export { lostDomainReason, resolveTunnelDomain } from './resolution.ts';
export { shareDomain, unshareDomain } from './share.ts';
export { createCustomDomains, parseAcmeChallenges, parsePublicIps, type CustomDomains, type CustomDomainsConfig, type CustomDomainsDeps, type EdgeCertificates, type PlainResponse } from './setup.ts';
export { prefetchCertificate, verifyAndCertify, verifyDomain, type VerifyDomainOptions, type VerifyResult } from './verify.ts';
