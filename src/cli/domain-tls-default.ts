import { pathParams } from '../api/client.ts';
import type { RelayApi } from './api-client.ts';

/**
 * Where TLS ends by default for a tunnel on custom domain `domain` when `--terminate-at` is not given: `agent` on a
 * domain added with `tunn domain add D --terminate-at agent` (issue 12: agent is the default there, as seed 000 says for
 * CNAME'd hostnames), otherwise undefined (the relay's default). Asked of the relay; when it cannot say (not a custom
 * domain, not visible to this token, relay unreachable) the default stays, and the relay's answer to the registration
 * says what to do.
 */
export async function terminateAtForDomain(api: RelayApi, domain: string, timeoutMs = 5_000): Promise<'agent' | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const ask = api.call((c) => c.v1.domains[':domain'].$get({ param: pathParams({ domain }) }));
    // A relay that does not answer must not hold the agent's start up: its own connect loop retries and says why.
    const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), timeoutMs)));
    const r = await Promise.race([ask, late]);
    ask.catch(() => {});
    const mode = r?.domain.tls.mode as string | undefined;
    return mode === 'agent' || mode === 'agent+relay-fallback' ? 'agent' : undefined;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
