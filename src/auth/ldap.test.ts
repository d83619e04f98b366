import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { BASE, BIND_DN, startSlapd, type Slapd } from '../../test/support/slapd.ts';
import { escapeFilterValue, firstRdnValue, LdapDirectory } from './ldap.ts';

// The LDAP group source against a real, throwaway slapd over TLS with a test CA.

describe('LDAP filter and DN helpers', () => {
  it('escapes filter values per RFC 4515 so an email cannot change the filter', () => {
    // Guards: a crafted "email" such as *)(uid=* must not widen the search to other entries.
    assert.equal(escapeFilterValue('a*)(uid=*'), 'a\\2a\\29\\28uid=\\2a');
    assert.equal(escapeFilterValue('back\\slash\u0000'), 'back\\5cslash\\00');
    assert.equal(escapeFilterValue('é'), '\\c3\\a9');
    assert.equal(escapeFilterValue('alice@corp.test'), 'alice@corp.test');
  });

  it("reads a group's name from its DN", () => {
    assert.equal(firstRdnValue('cn=Engineering,ou=groups,dc=corp'), 'Engineering');
    assert.equal(firstRdnValue('cn=R\\, D,ou=groups'), 'R, D');
    assert.equal(firstRdnValue('cn=\\c3\\a9quipe,ou=g'), 'équipe');
    assert.equal(firstRdnValue('nonsense'), undefined);
  });
});

describe('LdapDirectory against slapd', () => {
  let slapd: Slapd;
  let dir: LdapDirectory;
  let alice: string;
  let bob: string;
  let eng: string;
  before(async () => {
    slapd = await startSlapd();
    alice = await slapd.addUser('alice@corp.test');
    bob = await slapd.addUser('bob@corp.test');
    eng = await slapd.addGroup('Engineering', [alice]);
    await slapd.addGroup('staff', [alice, bob]);
    // Outside the group base: only memberOf on the user shows it.
    await slapd.addGroup('vpn-users', [bob], 'other');
    // uniqueMember only: found by the group-base search, not by memberOf.
    await slapd.addUniqueGroup('auditors', [bob]);
    dir = new LdapDirectory({ url: slapd.url, bindDn: BIND_DN, bindPassword: slapd.bindPassword, userBase: `ou=people,${BASE}`, groupBase: `ou=groups,${BASE}`, ca: slapd.caPem });
  });
  after(() => slapd?.close());

  it('finds groups through member and uniqueMember on group entries and memberOf on the user', async () => {
    assert.deepEqual((await dir.groupsOf('alice@corp.test')).sort(), ['Engineering', 'staff']);
    assert.deepEqual((await dir.groupsOf('bob@corp.test')).sort(), ['auditors', 'staff', 'vpn-users']);
    assert.deepEqual(await dir.groupsOf('nobody@corp.test'), []);
  });

  it('a filter-injection attempt finds nobody', async () => {
    // Guards: RFC 4515 escaping on the real server (unescaped, "*" would match alice and bob).
    assert.deepEqual(await dir.groupsOf('*'), []);
    assert.deepEqual(await dir.groupsOf('alice@corp.test)(mail=*'), []);
  });

  it('refuses an email that matches more than one entry (fail closed, never guess)', async () => {
    // Every person entry has objectClass=inetOrgPerson: as an "email attribute" it matches alice and bob at once.
    const twins = new LdapDirectory({ url: slapd.url, bindDn: BIND_DN, bindPassword: slapd.bindPassword, userBase: BASE, emailAttribute: 'objectClass', ca: slapd.caPem });
    await assert.rejects(twins.groupsOf('inetOrgPerson'), /more than one entry/);
  });

  it('ldap:// with StartTLS and the test CA works; StartTLS with an unknown CA is refused', async () => {
    const starttls = new LdapDirectory({ url: slapd.plainUrl, startTls: true, bindDn: BIND_DN, bindPassword: slapd.bindPassword, userBase: `ou=people,${BASE}`, groupBase: `ou=groups,${BASE}`, ca: slapd.caPem });
    assert.deepEqual((await starttls.groupsOf('alice@corp.test')).sort(), ['Engineering', 'staff']);
    const untrusted = new LdapDirectory({ url: slapd.plainUrl, startTls: true, bindDn: BIND_DN, bindPassword: slapd.bindPassword, userBase: BASE });
    assert.ok((await untrusted.check()) instanceof Error);
  });

  it('a membership removed in the directory is gone at the next lookup', async () => {
    await slapd.removeMember(eng, alice);
    assert.deepEqual(await dir.groupsOf('alice@corp.test'), ['staff']);
    await slapd.addMember(eng, alice);
  });

  it('wrong bind credentials are a configuration error; an unreachable directory is reported, not thrown', async () => {
    const wrong = new LdapDirectory({ url: slapd.url, bindDn: BIND_DN, bindPassword: 'not-the-password', userBase: BASE, ca: slapd.caPem });
    await assert.rejects(wrong.check(), (e) => isTunnError(e, 'CONFIG_INVALID') && /refused --ldap-bind-dn/.test(e.message) && /--ldap-bind-password-file/.test(e.message));
    assert.equal(await dir.check(), undefined);
    const untrusted = new LdapDirectory({ url: slapd.url, bindDn: BIND_DN, bindPassword: slapd.bindPassword, userBase: BASE });
    assert.ok((await untrusted.check()) instanceof Error, 'a certificate from an unknown CA is refused');
    await slapd.stop();
    try {
      const err = await dir.check();
      assert.ok(err instanceof Error);
      await assert.rejects(dir.groupsOf('alice@corp.test'));
    } finally {
      await slapd.start();
    }
    assert.deepEqual((await dir.groupsOf('alice@corp.test')).sort(), ['Engineering', 'staff']);
  });
});
