import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { agentDefaults, agentSchema, fromEnv, relayCrossChecks, relayDefaults, relaySchema, resolveConfig } from './config.ts';

describe('config', () => {
  it('layers defaults < file < env < flags', () => {
    const env = fromEnv(Object.keys(relaySchema.shape), { TUNN_HTTPS_PORT: '9443', TUNN_DOMAIN: 'env.example.com' });
    const c = resolveConfig(relaySchema, [relayDefaults(true), { domain: 'file.example.com', httpPort: 81 }, env, { domain: 'flag.example.com' }]);
    assert.equal(c.domain, 'flag.example.com');
    assert.equal(c.httpsPort, 9443);
    assert.equal(c.httpPort, 81);
    assert.equal(c.dev, true);
  });

  it('reports every problem at once, naming the flag', () => {
    assert.throws(
      () => resolveConfig(relaySchema, [relayDefaults(false), { domain: 'bad domain', httpsPort: '70000', bogus: 1 }]),
      (e) =>
        isTunnError(e, 'CONFIG_INVALID') &&
        e.message.includes('--domain: must be a DNS name') &&
        e.message.includes('--https-port: must be 0-65535') &&
        e.message.includes('unknown setting "bogus"'),
    );
  });

  it('says what to do when the agent has no token', () => {
    assert.throws(
      () => resolveConfig(agentSchema, [agentDefaults, { relay: 'https://tunn.example.com' }]),
      (e) => isTunnError(e, 'CONFIG_INVALID') && /--token: .*TUNN_TOKEN/.test(e.message),
    );
  });

  it('reports missing partner settings together with every other error, and reads dev from a file', () => {
    assert.throws(
      () => resolveConfig(relaySchema, [relayDefaults(false), { httpsPort: 'abc', oidcIssuer: 'https://id.example.com' }], relayCrossChecks),
      (e) =>
        isTunnError(e, 'CONFIG_INVALID') &&
        e.message.includes('--https-port: must be a port number, 0-65535') &&
        e.message.includes('--oidc-issuer needs --oidc-client-id') &&
        e.message.includes('--domain: is required'),
    );
    assert.throws(() => resolveConfig(relaySchema, [relayDefaults(true), { dnsResolver: 'bogus' }]), (e) => isTunnError(e, 'CONFIG_INVALID') && e.message.includes('--dns-resolver: must be the IP address'));
  });

  it('reads lists from the environment', () => {
    assert.deepEqual(fromEnv(['allow'], { TUNN_ALLOW: 'a@x.com, group:eng' }), { allow: ['a@x.com', 'group:eng'] });
  });
});
