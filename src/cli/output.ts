import { inertJson } from '../lib/inert.ts';

// Human-readable output of the CLI. With --json the same information goes out as JSON lines.

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

export function formatDuration(ms: number): string {
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** The edge controls of a tunnel, for its `Allowed:` line. */
export interface AccessControls {
  public: boolean;
  allow: string[];
  basicAuth?: { user: string };
  allowIps?: string[];
  rateLimit?: { perIp?: number; perTunnel?: number };
  grantFor?: { seconds: number };
}

/**
 * Everything that decides who gets through, in the order the relay checks it: "only you",
 * "bob@x.com, group:eng and you (for 2h)", "everyone (--public)", then each edge control in
 * force (IP allow-list, rate limits, basic auth).
 */
export function describeAccess(t: AccessControls, formatFor: (seconds: number) => string): string {
  const who = t.public ? 'everyone (--public)' : t.allow.length ? `${t.allow.join(', ')} and you${t.grantFor ? ` (for ${formatFor(t.grantFor.seconds)})` : ''}` : 'only you';
  const also: string[] = [];
  if (t.allowIps?.length) also.push(`from ${t.allowIps.join(', ')} only (--allow-ip)`);
  if (t.basicAuth) also.push(`with basic auth as ${t.basicAuth.user} (--basic-auth)`);
  const rl = t.rateLimit;
  if (rl?.perIp) also.push(`${rl.perIp} requests/min per client IP (--rate-limit)`);
  if (rl?.perTunnel) also.push(`${rl.perTunnel} requests/min in all (--rate-limit-tunnel)`);
  return also.length ? `${who}; ${also.join('; ')}` : who;
}

export function printJson(obj: Record<string, unknown>, out: { write(s: string): unknown } = process.stdout): void {
  // Values may carry what visitors chose (paths, hosts): C1 controls escaped too (see inert.ts).
  out.write(inertJson(JSON.stringify({ time: new Date().toISOString(), ...obj })) + '\n');
}
