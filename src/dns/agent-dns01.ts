import { TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import type { Dns01Provider } from './dns01-provider.ts';
import { isInZone } from './zone.ts';

// The relay's half of DNS-01 for an agent that gets its own certificate (issue 12): it
// publishes `_acme-challenge.<name>` TXT values in its zone only for names that agent's
// tunnels hold, so no agent can obtain a certificate for another's name, and removes them
// after. Phase 2 calls this from the control-stream handler of one agent session.

export interface AgentDns01 {
  present(recordName: string, value: string): Promise<void>;
  cleanup(recordName: string, value: string): Promise<void>;
}

/** `holds(hostname)`: whether the asking agent holds a live tunnel for that (normalised) host. */
export function agentDns01(provider: Dns01Provider, holds: (hostname: string) => boolean): AgentDns01 {
  const check = (recordName: string, what: string): string => {
    const n = normalizeHost(recordName);
    const host = n.startsWith('_acme-challenge.') ? n.slice('_acme-challenge.'.length) : '';
    if (!host || !isInZone(host, provider.zone)) throw new TunnError('FORBIDDEN', `${what} ${recordName.slice(0, 253)}: an agent may only ask for _acme-challenge.<its name> under ${provider.zone}`);
    if (!holds(host)) throw new TunnError('FORBIDDEN', `${what} ${n}: this agent does not hold a tunnel for ${host}`);
    return n;
  };
  return {
    async present(recordName, value) {
      const n = check(recordName, 'publishing a DNS-01 record at');
      await provider.present(n, value);
      await provider.waitVisible(n, value);
    },
    async cleanup(recordName, value) {
      await provider.cleanup(check(recordName, 'removing the DNS-01 record at'), value);
    },
  };
}
