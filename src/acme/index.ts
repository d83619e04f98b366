export { createAcmeAccountKey, type AcmeAccountStore } from './account.ts';
export { ariCertId, ariCertIdFromParts, fetchRenewalWindow, renewalInfoUrl, type RenewalWindow } from './ari.ts';
export { Dns01Solver, type Dns01Options } from './dns01.ts';
export { acmeHttpsAgent, configureAcmeHttp, type AcmeHttpSettings } from './http-settings.ts';
export { HTTP01_PREFIX, Http01Solver } from './http01.ts';
export type { AuthzInfo, ChallengeInfo, ChallengeSolver, ChallengeType } from './solver.ts';
export { ACME_TLS_ALPN, TlsAlpn01Solver } from './tls-alpn01.ts';
