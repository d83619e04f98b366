import { existsSync, readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { TlsContexts } from '../agent/tls/contexts.ts';
import { spkiPin } from '../agent/tls/pin.ts';
import type { AgentOptions } from '../config/config.ts';
import { errorMessage, TunnError } from '../lib/errors.ts';

// The flags of `tunn <target>` for TLS that ends at the agent (issue 12):
//   --terminate-at agent|relay   (default relay)
//   --no-fallback                visitors fail the handshake until the agent's certificate is ready
//   --acme-directory/--acme-email/--acme-ca   the agent's own ACME CA (default: what the relay advertises in welcome)
//   --tls-cert/--tls-key         serve these files instead of ACME
//   --client-ca FILE             require client certificates from this CA (mTLS); implies --no-fallback
//                                (the relay cannot ask for them, so it never ends TLS for such a tunnel)
//   --keep-key                   renewals keep the key, so a pin survives
// Checked with every other setting (agentTlsProblems, from agentCrossChecks), then read
// (agentTlsSettings), then wired by run-agent-tls.ts.

const truthy = (v: unknown): boolean => v === true || ['1', 'true', 'yes', 'on'].includes(String(v));
const falsy = (v: unknown): boolean => v === false || ['0', 'false', 'no', 'off'].includes(String(v));

/** The shortest retry period TUNN_TEST_AGENT_TLS_RETRY_MS may set: a shorter one would hammer the CA and the relay's DNS-01 budget. */
export const MIN_TEST_RETRY_MS = 100;

/**
 * TUNN_TEST_AGENT_TLS_RETRY_MS (tests only: a CA outage retried in seconds, not a minute): a
 * whole number of milliseconds, at least MIN_TEST_RETRY_MS; anything else (empty, `abc`, `0`,
 * `1.5`) is ignored and the default period applies.
 */
export function testRetryMs(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  const ms = Number(v.trim());
  return Number.isSafeInteger(ms) && ms >= MIN_TEST_RETRY_MS ? ms : undefined;
}

/** Problems with the TLS flags on the merged settings (all of them, for one message). */
export function agentTlsProblems(m: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const atAgent = m.terminateAt === 'agent';
  const needsAgent: [string, boolean][] = [
    ['--no-fallback', falsy(m.fallback)],
    ['--acme-directory', m.acmeDirectory !== undefined],
    ['--acme-email', m.acmeEmail !== undefined],
    ['--acme-ca', m.acmeCa !== undefined],
    ['--tls-cert', m.tlsCert !== undefined],
    ['--tls-key', m.tlsKey !== undefined],
    ['--client-ca', m.clientCa !== undefined],
    ['--keep-key', truthy(m.keepKey)],
  ];
  for (const [flag, given] of needsAgent) {
    if (given && !atAgent) problems.push(`${flag} only applies with --terminate-at agent (TLS ends at the relay otherwise, and the relay holds the certificate)`);
  }
  if (m.tlsCert !== undefined && m.tlsKey === undefined) problems.push('--tls-cert needs --tls-key (the private key of the certificate)');
  if (m.tlsKey !== undefined && m.tlsCert === undefined) problems.push('--tls-key needs --tls-cert');
  if (m.tlsCert !== undefined && (m.acmeDirectory !== undefined || truthy(m.keepKey))) problems.push('--tls-cert serves your own certificate: drop --acme-directory and --keep-key (they are for certificates the agent gets by ACME)');
  for (const k of ['tlsCert', 'tlsKey', 'clientCa', 'acmeCa'] as const) {
    const v = m[k];
    if (typeof v === 'string' && !existsSync(v)) problems.push(`cannot read --${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} ${v}: no such file`);
  }
  return problems;
}

export interface AgentTlsSettings {
  terminateAt: 'agent' | 'relay';
  /** False with --no-fallback, and with --client-ca (which the relay cannot enforce). */
  fallback: boolean;
  acme?: { directory?: string; email?: string; caPem?: string };
  /** --tls-cert/--tls-key, read and checked to match. */
  files?: { chainPem: string; keyPem: string; pin: string };
  clientCaPem?: string;
  keepKey: boolean;
  /** `tunn tls --backend tcp --alpn`: the only ALPN protocols negotiated. */
  alpn?: string[];
}

function read(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new TunnError('CONFIG_INVALID', `cannot read ${flag} ${path}: ${errorMessage(err)}`);
  }
}

/** Reads the files the TLS flags name and checks they are what they should be. */
export function agentTlsSettings(o: Pick<AgentOptions, 'terminateAt' | 'fallback' | 'acmeDirectory' | 'acmeEmail' | 'acmeCa' | 'tlsCert' | 'tlsKey' | 'clientCa' | 'keepKey'>): AgentTlsSettings {
  const s: AgentTlsSettings = { terminateAt: o.terminateAt ?? 'relay', fallback: o.fallback !== false, keepKey: o.keepKey === true };
  if (s.terminateAt === 'relay') return s;
  if (o.tlsCert && o.tlsKey) {
    const chainPem = read('--tls-cert', o.tlsCert);
    const keyPem = read('--tls-key', o.tlsKey);
    try {
      createSecureContext({ cert: chainPem, key: keyPem });
    } catch (err) {
      throw new TunnError('CONFIG_INVALID', `--tls-cert ${o.tlsCert} and --tls-key ${o.tlsKey} do not go together (${errorMessage(err)}): give the certificate chain and the private key it was issued for, both PEM`);
    }
    s.files = { chainPem, keyPem, pin: spkiPin(chainPem) };
  } else {
    s.acme = { directory: o.acmeDirectory, email: o.acmeEmail, caPem: o.acmeCa ? read('--acme-ca', o.acmeCa) : undefined };
  }
  if (o.clientCa) {
    s.fallback = false;
    s.clientCaPem = read('--client-ca', o.clientCa);
    new TlsContexts({ clientCaPem: s.clientCaPem }); // throws CONFIG_INVALID naming the flag when it holds no certificate
  }
  return s;
}
