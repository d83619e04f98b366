import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as acme from 'acme-client';

// Mend (issue 10): acme-client's settings are process-wide; importing our module changes none
// of them, an issuer applies what it needs when it is created, and applying it again is a no-op.

type Settings = { acmeSettings: { retryMaxAttempts: number; retryDefaultDelay: number } };

it('changes nothing at import; configuring is explicit and idempotent', async () => {
  const agentBefore = acme.axios.defaults.httpsAgent;
  const retryBefore = { ...(acme.axios.defaults as unknown as Settings).acmeSettings };
  const { configureAcmeHttp, acmeHttpsAgent } = await import('./http-settings.ts');
  assert.equal(acme.axios.defaults.httpsAgent, agentBefore, 'import leaves the HTTPS agent alone');
  assert.deepEqual({ ...(acme.axios.defaults as unknown as Settings).acmeSettings }, retryBefore, 'import leaves the retries alone');

  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  configureAcmeHttp({ caPem: pem, retry: { maxAttempts: 2, defaultDelaySeconds: 0.5 } });
  const agent = acmeHttpsAgent();
  assert.ok(agent && agent !== agentBefore, 'an agent trusting the extra CA');
  assert.ok((agent.options.ca as string[]).includes(pem));
  assert.equal((acme.axios.defaults as unknown as Settings).acmeSettings.retryMaxAttempts, 2);
  configureAcmeHttp({ caPem: pem });
  assert.equal(acmeHttpsAgent(), agent, 'the same CA again: the same agent');
  const other = pem.replace('MIIB', 'MIIC');
  configureAcmeHttp({ caPem: other });
  const both = acmeHttpsAgent()!.options.ca as string[];
  assert.ok(both.includes(pem) && both.includes(other), 'adding a CA keeps the earlier one');
});
