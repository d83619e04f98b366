import { join } from 'node:path';
import { caaIssuerFor, caaRecords } from '../agent/tls/caa.ts';
import { AgentCertStore } from '../agent/tls/cert-store.ts';
import { renewAt } from '../agent/tls/acme-agent.ts';
import { spkiPin } from '../agent/tls/pin.ts';
import { TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import { configDir } from './config-dir.ts';
import { printJson } from './output.ts';
import { formatTable } from './table.ts';

// `tunn cert caa <name>`, `tunn cert pin <name>` and `tunn cert local`: what this agent holds
// for names whose TLS ends at the agent (issue 12), read from its config dir (`<config>/tls`).
// Nothing here needs the agent's secret key or the relay: no private key is opened.

export interface AgentCertFlags {
  json?: boolean;
  acmeDirectory?: string;
  caDomain?: string;
  customDomain?: string;
}

/** The agent's TLS state dir in the user's config dir. */
export function agentTlsDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'tls');
}

type Write = (s: string) => void;

function stored(store: AgentCertStore, rawName: string) {
  const name = normalizeHost(rawName);
  const c = store.list().find((x) => x.name === name);
  if (!c) throw new TunnError('NOT_FOUND', `this agent holds no certificate for ${name}: start the tunnel with \`tunn <port> -n <name> --terminate-at agent\` first (\`tunn cert local\` lists what it holds)`);
  return c;
}

export function runCertPin(rawName: string, o: AgentCertFlags, store = new AgentCertStore(agentTlsDir()), write: Write = (s) => process.stdout.write(s)): void {
  const c = stored(store, rawName);
  const pin = spkiPin(c.chainPem);
  // `sha256//<base64>` is what curl --pinnedpubkey takes; the base64 alone is RFC 7469's pin-sha256.
  if (o.json) printJson({ event: 'pin', name: c.name, pin: `sha256//${pin}`, notAfter: new Date(c.notAfter).toISOString() }, { write });
  else write(`sha256//${pin}\n`);
}

export function runCertCaa(rawName: string, o: AgentCertFlags, store = new AgentCertStore(agentTlsDir()), write: Write = (s) => process.stdout.write(s)): void {
  const name = normalizeHost(rawName);
  const accounts = store.accounts().filter((a) => a.accountUrl && (!o.acmeDirectory || a.directoryUrl === o.acmeDirectory));
  if (accounts.length === 0) {
    throw new TunnError('NOT_FOUND', o.acmeDirectory ? `this agent has no ACME account at ${o.acmeDirectory} yet: it gets one with its first certificate (\`tunn <port> --terminate-at agent\`)` : 'this agent has no ACME account yet: it gets one with its first certificate (`tunn <port> --terminate-at agent`)');
  }
  if (accounts.length > 1) throw new TunnError('INVALID_INPUT', `this agent has accounts at several CAs; say which with --acme-directory: ${accounts.map((a) => a.directoryUrl).join(', ')}`);
  const a = accounts[0]!;
  const caDomain = o.caDomain ?? caaIssuerFor(a.directoryUrl);
  if (!caDomain) throw new TunnError('INVALID_INPUT', `tunn does not know the CAA domain of the CA at ${a.directoryUrl}: pass it with --ca-domain (the CA documents it, e.g. letsencrypt.org)`);
  const records = caaRecords({ name, caDomain, accountUri: a.accountUrl!, customDomain: o.customDomain });
  if (o.json) printJson({ event: 'caa', name, caDomain, accountUri: a.accountUrl, records }, { write });
  else write(records.join('\n') + '\n');
}

export function runCertLocal(o: AgentCertFlags, store = new AgentCertStore(agentTlsDir()), write: Write = (s) => process.stdout.write(s), now = Date.now()): void {
  // renewedBy: `ari` (a time in the CA's suggested window, RFC 9773) or `lifetime` (2/3 of it); --tls-cert files are not renewed by the agent.
  const certs = store.list().map((c) => ({
    name: c.name,
    terminatedAt: 'agent',
    issuer: c.issuer,
    notAfter: new Date(c.notAfter).toISOString(),
    renewAt: new Date(renewAt(c)).toISOString(),
    renewedBy: c.renewal?.source === 'ari' ? 'ari' : 'lifetime',
    ...(c.renewal?.window ? { ariWindow: { start: new Date(c.renewal.window.start).toISOString(), end: new Date(c.renewal.window.end).toISOString() } } : {}),
    expired: c.notAfter <= now,
    pin: `sha256//${spkiPin(c.chainPem)}`,
  }));
  if (o.json) return printJson({ event: 'certs', scope: 'agent', certs }, { write });
  if (certs.length === 0) return write('This agent holds no certificates: names whose TLS ends at the agent (`--terminate-at agent`) get one when their tunnel starts.\n');
  write(formatTable(['NAME', 'TLS', 'ISSUER', 'NOT AFTER', 'RENEWS', 'PIN'], certs.map((c) => [c.name, c.expired ? 'agent (expired)' : 'agent', c.issuer, c.notAfter, `${c.renewAt} (${c.renewedBy === 'ari' ? 'ARI' : '2/3 of lifetime'})`, c.pin])));
}
