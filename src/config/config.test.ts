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

  it('takes numbers where numbers are meant, from a config file as JSON numbers or strings', () => {
    const file = { relay: 'https://tunn.example.com', token: 't', rateLimit: 100, rateLimitTunnel: '500', sessions: 4, allow: 'a@x.com, group:eng' };
    const c = resolveConfig(agentSchema, [agentDefaults, file]);
    assert.equal(c.rateLimit, 100);
    assert.equal(c.rateLimitTunnel, 500);
    assert.equal(c.sessions, 4);
    assert.deepEqual(c.allow, ['a@x.com', 'group:eng']);
    const r = resolveConfig(relaySchema, [relayDefaults(true), { httpsPort: 9443, idleTimeout: '60', maxHeadSize: 2048 }]);
    assert.equal(r.httpsPort, 9443);
    assert.equal(r.idleTimeout, 60);
  });

  it('reports every agent and relay error at once in tunn\'s words, never the validator\'s', () => {
    const agentFile = { relay: 'https://tunn.example.com', token: 't', name: 5, public: 'maybe', rateLimit: 0, sessions: 'many', allowIp: { a: 1 }, quiet: true };
    assert.throws(
      () => resolveConfig(agentSchema, [agentDefaults, agentFile]),
      (e) => {
        assert.ok(isTunnError(e, 'CONFIG_INVALID'));
        assert.match(e.message, /--name: must be text \(in a config file: a string in quotes\)/);
        assert.match(e.message, /--public: must be true or false/);
        assert.match(e.message, /--rate-limit: must be at least 1/);
        assert.match(e.message, /--sessions: must be a whole number of connections, 1-16/);
        assert.match(e.message, /--allow-ip: must be a list/);
        assert.doesNotMatch(e.message, /Invalid input|expected \w+, received|Too small/);
        return true;
      },
    );
    assert.throws(
      () => resolveConfig(relaySchema, [relayDefaults(true), { httpsPort: true, dev: 3, maxHeadSize: 5, relayCerts: 'both' }]),
      (e) => {
        assert.ok(isTunnError(e, 'CONFIG_INVALID'));
        assert.match(e.message, /--https-port: must be a port number, 0-65535/); // true is not port 1
        assert.match(e.message, /--dev: must be true or false/);
        assert.match(e.message, /--max-head-size: must be at least 1024/);
        assert.match(e.message, /--relay-certs: must be one of "wildcard", "per-host"/);
        assert.doesNotMatch(e.message, /Invalid input|expected \w+, received|Too small|Invalid option/);
        return true;
      },
    );
  });

  it('refuses an idle time longer than a timer can hold (Node fires a longer one at once, which would cut every connection)', () => {
    assert.throws(
      () => resolveConfig(relaySchema, [relayDefaults(true), { tcpIdle: 30 * 86400, udpFlowIdle: '2147484', idleTimeout: 86400 * 24 }]),
      (e) => {
        assert.ok(isTunnError(e, 'CONFIG_INVALID'));
        assert.match(e.message, /--tcp-idle: must be at most 2147483 seconds \(24 days\)/);
        assert.match(e.message, /--udp-flow-idle: must be at most 2147483 seconds/);
        assert.doesNotMatch(e.message, /--idle-timeout/, '24 days fits');
        return true;
      },
    );
  });

  it('reports missing files and a certificate without its key with every other relay error', () => {
    assert.throws(
      () => resolveConfig(relaySchema, [relayDefaults(true), { tlsCert: '/nonexistent/cert.pem', ldapUrl: 'ldaps://l', ldapUserBase: 'dc=x', ldapCa: '/nonexistent/ca.pem', httpsPort: 'x' }], relayCrossChecks),
      (e) =>
        isTunnError(e, 'CONFIG_INVALID') &&
        e.message.includes('--tls-cert needs --tls-key (the private key of the certificate)') &&
        e.message.includes('cannot read --tls-cert /nonexistent/cert.pem: no such file') &&
        e.message.includes('cannot read --ldap-ca /nonexistent/ca.pem: no such file') &&
        e.message.includes('--https-port: must be a port number, 0-65535'),
    );
  });
});
