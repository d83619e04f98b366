import { setTimeout as sleep } from 'node:timers/promises';
import { dnsQuery, formatEndpoint as endpoint, txtString, type DnsEndpoint } from '../client.ts';
import { errorMessage, TunnError } from '../../lib/errors.ts';

// "Wait until visible" for DNS-01: ask the servers the CA's resolver will reach (the RFC 2136
// server itself, a zone's authoritative servers, or `--dns-resolver`) for the TXT value, with a
// growing interval, instead of sleeping a fixed time and hoping.

export interface WaitOptions {
  /** Give up after this long (default 120 s: secondaries usually follow a NOTIFY within seconds). */
  timeoutMs?: number;
  /** First interval between questions (default 250 ms; doubles up to 2 s). */
  pollMs?: number;
}

/** Resolves once every server in `servers` answers `name` TXT with `value` among its strings. */
export async function waitForTxt(servers: DnsEndpoint[], name: string, value: string, opts: WaitOptions = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  let interval = opts.pollMs ?? 250;
  const pending = new Set(servers);
  let last = '';
  for (;;) {
    for (const server of [...pending]) {
      try {
        const r = await dnsQuery(server, name, 'TXT', { tcp: true, timeoutMs: 3000 });
        const values = (r.answers ?? []).filter((a) => a.type === 'TXT').map(txtString);
        if (values.includes(value)) pending.delete(server);
        else last = `${endpoint(server)} answered ${r.rcode}${values.length ? ` with ${values.length} other value(s)` : ' without it'}`;
      } catch (err) {
        last = `${endpoint(server)}: ${errorMessage(err)}`;
      }
    }
    if (pending.size === 0) return;
    if (Date.now() + interval > deadline) {
      throw new TunnError('UNAVAILABLE', `the TXT record ${name} was written but is not visible after ${Math.round((opts.timeoutMs ?? 120_000) / 1000)} s (last: ${last})`);
    }
    await sleep(interval);
    interval = Math.min(interval * 2, 2000);
  }
}
