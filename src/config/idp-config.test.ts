import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTarget } from '../agent/target.ts';
import { agentConfigFrom } from '../cli/run-agent.ts';
import { ldapDirectoryFrom } from '../cli/ldap-config.ts';
import { isTunnError } from '../lib/errors.ts';
import { agentDefaults, agentSchema, relayCrossChecks, relayDefaults, relaySchema, resolveConfig } from './config.ts';

// The errors a user gets for IdP-group and --for settings: each names the flag and says what to do.

const relay = (o: Record<string, unknown>) => resolveConfig(relaySchema, [relayDefaults(true), o], relayCrossChecks);

describe('IdP group and grant settings', () => {
  it('reports settings without their partners, all at once', () => {
    assert.throws(
      () => relay({ oidcGroupsClaim: 'groups', ldapBindDn: 'cn=tunn,dc=corp', ldapUrl: 'ldaps://ldap.corp' }),
      (e) =>
        isTunnError(e, 'CONFIG_INVALID') &&
        e.message.includes('--oidc-groups-claim needs --oidc-issuer') &&
        e.message.includes('--ldap-url needs --ldap-user-base') &&
        e.message.includes('--ldap-bind-dn needs its password: --ldap-bind-password-file'),
    );
    assert.throws(
      () => relay({ ldapUrl: 'ldaps://l', ldapUserBase: 'dc=c', ldapBindDn: 'cn=t', ldapBindPassword: 'x', ldapBindPasswordFile: '/f' }),
      (e) => isTunnError(e, 'CONFIG_INVALID') && e.message.includes('are both given; keep only --ldap-bind-password-file'),
    );
  });

  it('refuses malformed values with an example', () => {
    assert.throws(() => relay({ ldapUrl: 'ldap.corp', ldapUserBase: 'dc=c' }), (e) => isTunnError(e, 'CONFIG_INVALID') && e.message.includes('--ldap-url: must be an ldap:// or ldaps:// URL'));
    assert.throws(() => relay({ idpRefresh: '0' }), (e) => isTunnError(e, 'CONFIG_INVALID') && e.message.includes('--idp-refresh: must be at least 1 second'));
    assert.throws(
      () => relay({ oidcIssuer: 'https://id', oidcClientId: 'c', oidcClientSecret: 's', oidcGroupsClaim: 'realm_access..roles' }),
      (e) => isTunnError(e, 'CONFIG_INVALID') && e.message.includes('--oidc-groups-claim: must be a claim name or a dotted path'),
    );
    const ok = relay({ oidcIssuer: 'https://id', oidcClientId: 'c', oidcClientSecret: 's', oidcGroupsClaim: 'realm_access.roles', idpRefresh: '60' });
    assert.equal(ok.idpRefresh, 60);
  });

  it('refuses ldap:// without StartTLS: the bind password would cross the network in the clear', () => {
    assert.throws(() => relay({ ldapUrl: 'ldap://ldap.corp', ldapUserBase: 'dc=c' }), (e) => isTunnError(e, 'CONFIG_INVALID') && e.message.includes('use ldaps://, or add --ldap-starttls'));
    assert.equal(relay({ ldapUrl: 'ldap://ldap.corp', ldapUserBase: 'dc=c', ldapStarttls: 'true' }).ldapStarttls, true);
  });

  it('an unreadable --ldap-bind-password-file names the flag and the file (the one secrets policy)', () => {
    assert.throws(
      () => relay({ ldapUrl: 'ldaps://ldap.corp', ldapUserBase: 'dc=corp', ldapBindDn: 'cn=t', ldapBindPasswordFile: '/nonexistent/tunn-ldap-password' }),
      (e) => isTunnError(e, 'CONFIG_INVALID') && e.message.includes('--ldap-bind-password-file') && e.message.includes('/nonexistent/tunn-ldap-password'),
    );
    const o = relay({ ldapUrl: 'ldaps://ldap.corp', ldapUserBase: 'dc=corp', ldapBindDn: 'cn=t', ldapBindPassword: 's3cret' });
    assert.equal(ldapDirectoryFrom(o) !== undefined, true);
  });

  it('the agent: --for needs -a entries, and a duration with a unit', () => {
    const agent = (o: Record<string, unknown>) => agentConfigFrom(resolveConfig(agentSchema, [agentDefaults, { relay: 'https://tunn.example.com', token: 't', ...o }]), parseTarget('8080'));
    assert.throws(() => agent({ for: '2h' }), (e) => isTunnError(e, 'INVALID_INPUT') && /--for limits the -a entries .* add -a <who>/.test(e.message));
    assert.throws(() => agent({ for: '2', allow: ['bob@client.com'] }), (e) => isTunnError(e, 'INVALID_INPUT') && /e\.g\. 30m, 2h/.test(e.message));
    const c = agent({ for: '2h', allow: ['bob@client.com'] });
    assert.equal(c.tunnels[0]!.grantFor?.seconds, 7200);
    assert.match(c.tunnels[0]!.grantFor!.ref, /^[A-Za-z0-9_-]{16,}$/);
  });
});
