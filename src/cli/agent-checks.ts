import { existsSync } from 'node:fs';
import { parseDuration } from '../auth/grants.ts';
import { parseIpAllowList } from '../auth/ip-allow.ts';
import { parseAllowList } from '../auth/policy.ts';
import { errorMessage } from '../lib/errors.ts';
import { parseAllowUpgrade } from '../relay/upgrades.ts';
import { agentTlsProblems } from './agent-tls-flags.ts';

// The agent's settings that need more than their own type to check (allow-list entries, CIDRs,
// durations, pairs of settings, files), run on the merged settings, so their problems are
// reported in the same message as every other configuration error (resolveConfig's crossChecks).

const asList = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : []);
const truthy = (v: unknown): boolean => v === true || ['1', 'true', 'yes', 'on'].includes(String(v));

export function agentCrossChecks(merged: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const check = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      // Each parser already names the flag and the value; several problems come on separate lines.
      problems.push(...errorMessage(err).split('\n').map((l) => l.replace(/^\s*- /, '')).filter(Boolean));
    }
  };
  const allow = asList(merged.allow);
  check(() => parseAllowList(allow));
  const allowIp = asList(merged.allowIp);
  if (allowIp.length) check(() => parseIpAllowList(allowIp));
  // Repeatable and comma-separated, as the agent reads it.
  const upgrades = asList(merged.allowUpgrade).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  if (upgrades.length) check(() => parseAllowUpgrade(upgrades));
  if (typeof merged.for === 'string') check(() => parseDuration(merged.for as string));
  if (truthy(merged.public) && allow.length) problems.push('--public and -a do not go together: a public tunnel is open to everyone');
  if (merged.for !== undefined && allow.length === 0) problems.push('--for limits the -a entries of this command, and there are none: add -a <who> (the owner always keeps access)');
  problems.push(...agentTlsProblems(merged));
  if (typeof merged.relayCa === 'string' && !existsSync(merged.relayCa)) problems.push(`--relay-ca ${merged.relayCa}: no such file; pass the relay's CA certificate (a dev relay prints its path, dev-ca.pem in its data dir)`);
  return problems;
}
