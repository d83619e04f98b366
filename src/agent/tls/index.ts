// TLS that ends at the agent (issue 12). What phase 2 wires is listed in docs/agent-tls-phase2.md.
export { AgentAcme, renewalDueAt, type AgentAcmeOptions } from './acme-agent.ts';
export { AgentGate, credentialOf, DECISION_TTL_MS, type AgentGateOptions, type AgentTunnelPolicy } from './agent-gate.ts';
export { agentHttpHandler, type AgentHttpHandler, type AgentHttpOptions } from './agent-http.ts';
export { AgentTls, type AgentTlsOptions, type CertificateSource, type TlsState } from './agent-tls.ts';
export { answerTlsAlpn01 } from './alpn-responder.ts';
export { caaIssuerFor, caaRecords, type CaaInput } from './caa.ts';
export { AgentCertStore, type AgentCertificate } from './cert-store.ts';
export { TlsContexts, type ServedCertificate } from './contexts.ts';
export { RequestedDns01Solver, type Dns01Requester } from './dns01-requester.ts';
export { spkiPin, spkiPinOfKey } from './pin.ts';
export { TlsTerminator, type TerminatorOptions, type TlsHandler, type VisitorConnection } from './terminator.ts';
