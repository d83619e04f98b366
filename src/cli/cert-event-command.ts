import type { Command } from 'commander';
import { certEventHeaders } from '../certs/cert-event-signature.ts';
import { fromEnv, resolveSecretLayer } from '../config/config.ts';
import { TunnError } from '../lib/errors.ts';
import { RelayApi, resolveApiTarget } from './api-client.ts';
import { printJson } from './output.ts';
import { secretOption } from './secret-flags.ts';

// `tunn cert event <domain> --status …`: the sender of POST /v1/domains/cert-events for an
// external certificate manager (a certbot deploy hook, a cert-manager webhook, cron). It signs
// the body with the cert event token (src/certs/cert-event-signature.ts); the token is never sent.

const STATUSES = ['pending_issue', 'pending_route', 'issued', 'expiring', 'tls_error', 'passthrough_unverified'];

export interface CertEventFlags {
  status?: string;
  notAfter?: string;
  certificateRef?: string;
  error?: string;
  message?: string;
  relay?: string;
  relayCa?: string;
  certEventToken?: string;
  certEventTokenFile?: string;
  json?: boolean;
}

/** The token from --cert-event-token(-file), then TUNN_CERT_EVENT_TOKEN(_FILE). */
export function certEventToken(flags: CertEventFlags, env: NodeJS.ProcessEnv): string {
  const fromFlags = resolveSecretLayer({ certEventToken: flags.certEventToken, certEventTokenFile: flags.certEventTokenFile });
  const token = fromFlags.certEventToken ?? resolveSecretLayer(fromEnv(['certEventToken'], env)).certEventToken;
  if (typeof token !== 'string') throw new TunnError('CONFIG_INVALID', 'no cert event token: pass --cert-event-token-file FILE or set TUNN_CERT_EVENT_TOKEN (the same value as the relay\'s --cert-event-token-file)');
  return token;
}

export async function runCertEvent(domain: string, flags: CertEventFlags, env: NodeJS.ProcessEnv = process.env, now = Date.now): Promise<void> {
  if (!flags.status || !STATUSES.includes(flags.status)) throw new TunnError('INVALID_INPUT', `--status must be one of ${STATUSES.join(', ')}`);
  const token = certEventToken(flags, env);
  const body = { domain, status: flags.status, not_after: flags.notAfter, certificate_ref: flags.certificateRef, error: flags.error, message: flags.message };
  const api = new RelayApi({ ...resolveApiTarget({ relay: flags.relay, relayCa: flags.relayCa }, env), token: undefined });
  // Signed at the moment of sending, over the exact bytes sent.
  const payload = JSON.stringify(body);
  const r = (await api.call((c) => c.v1.domains['cert-events'].$post({}, { headers: { 'content-type': 'application/json', ...certEventHeaders(token, payload, now()) }, init: { body: payload } }), { auth: false })) as { domain: string; tls_status: string };
  if (flags.json) printJson({ event: 'cert_event', domain: r.domain, status: r.tls_status });
  else process.stderr.write(`tunn: ${r.domain}: reported ${r.tls_status}\n`);
}

export function registerCertEventCommand(cert: Command): void {
  const cmd = cert
    .command('event')
    .description('report a certificate state from an external certificate manager (signed with the cert event token)')
    .argument('<domain>', 'a registered custom domain')
    .requiredOption('--status <status>', STATUSES.join(' | '))
    .option('--not-after <time>', 'expiry of the certificate (ISO 8601)')
    .option('--certificate-ref <ref>', "the manager's name for the certificate")
    .option('--error <message>', 'what went wrong (with --status tls_error)')
    .option('--message <text>', 'a note for the domain\'s event log')
    .option('--relay <url>', 'relay URL (env TUNN_RELAY)')
    .option('--relay-ca <file>', 'extra CA certificate to trust for the relay (env TUNN_RELAY_CA)');
  secretOption(cmd, 'certEventToken', 'token', "the relay's cert event token");
  cmd.option('--json', 'print JSON').action((domain: string, o: CertEventFlags) => runCertEvent(domain, o));
}
