import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { BASE, BIND_DN, LIMITED_BIND_DN, startSlapd, type Slapd } from '../../test/support/slapd.ts';
import { escapeFilterValue, firstRdnValue, LdapDirectory } from './ldap.ts';
import { isUnder, parseDn } from './ldap-dn.ts';

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
    assert.equal(firstRdnValue('cn=a"b,ou=g'), undefined, 'an unescaped quote is not RFC 4514');
    assert.equal(parseDn('cn=\\ lead and trail\\ , ou=g')![0]![0]!.value, ' lead and trail ', 'escaped spaces count, unescaped ones around a value do not');
    assert.equal(firstRdnValue('cn=Ops+uid=x,ou=g'), 'Ops', 'a multi-valued RDN names the group by its first value');
  });

  // Guards the --ldap-group-base check: a group counts only when its DN lies under the base,
  // compared as directories compare DNs (types and values case-insensitively, escapes undone).
  it('tells whether a DN lies under another', () => {
    const base = parseDn('ou=groups, DC=Corp,dc=test')!;
    assert.equal(isUnder(parseDn('cn=Engineering,ou=groups,dc=corp,dc=test')!, base), true);
    assert.equal(isUnder(parseDn('CN=x,OU=Groups,Dc=CORP,dc=test')!, base), true);
    assert.equal(isUnder(parseDn('cn=x,ou=team,ou=groups,dc=corp,dc=test')!, base), true, 'nested containers are under the base');
    assert.equal(isUnder(parseDn('cn=x,ou=gr\\6fups,dc=corp,dc=test')!, base), true, 'hex escapes are undone');
    assert.equal(isUnder(parseDn('ou=groups,dc=corp,dc=test')!, base), false, 'the base itself is not a group');
    assert.equal(isUnder(parseDn('cn=Engineering,ou=self-service,dc=corp,dc=test')!, base), false);
    assert.equal(isUnder(parseDn('cn=x,ou=groups\\,dc=corp,dc=test,dc=evil')!, base), false, 'an escaped comma is part of a value');
    assert.equal(isUnder(parseDn('cn=x,ou=groups,dc=corp,dc=test,dc=evil')!, base), false);
    assert.equal(isUnder(parseDn('cn=x,ou=groups+cn=y,dc=corp,dc=test')!, base), false, 'a multi-valued RDN is not the base RDN');
    assert.equal(parseDn('ou=groups,'), undefined);
    assert.equal(parseDn('groups'), undefined);
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
    // Outside the group base (where, say, users may create groups themselves): only memberOf on
    // the user shows it, and with a group base it must not count.
    await slapd.addGroup('vpn-users', [bob], 'other');
    await slapd.addGroup('Engineering', [bob], 'other');
    // uniqueMember only: found by the group-base search, not by memberOf.
    await slapd.addUniqueGroup('auditors', [bob]);
    // Named by its DN (cn=readers), though its first cn value says otherwise.
    await slapd.addUniqueGroup('readers', [bob], ['engineering']);
    dir = new LdapDirectory({ url: slapd.url, bindDn: BIND_DN, bindPassword: slapd.bindPassword, userBase: `ou=people,${BASE}`, groupBase: `ou=groups,${BASE}`, ca: slapd.caPem });
  });
  after(() => slapd?.close());

  it('finds groups through member and uniqueMember on group entries and memberOf on the user', async () => {
    assert.deepEqual((await dir.groupsOf('alice@corp.test')).sort(), ['Engineering', 'staff']);
    assert.deepEqual(await dir.groupsOf('nobody@corp.test'), []);
  });

  // Property guarded: with --ldap-group-base, only groups under it grant idp:<name>. Before the
  // fix, memberOf DNs from anywhere counted (cn=Engineering,ou=other,… granted idp:engineering),
  // and a group entry was named by its first cn value rather than its DN.
  it('with a group base, counts only groups under it, each named by its own DN', async () => {
    assert.deepEqual((await dir.groupsOf('bob@corp.test')).sort(), ['auditors', 'readers', 'staff']);
    // Without a group base the operator takes memberOf from the whole directory.
    const anywhere = new LdapDirectory({ url: slapd.url, bindDn: BIND_DN, bindPassword: slapd.bindPassword, userBase: `ou=people,${BASE}`, ca: slapd.caPem });
    assert.deepEqual((await anywhere.groupsOf('bob@corp.test')).sort(), ['Engineering', 'staff', 'vpn-users']);
  });

  it('a group base that is not a DN stops the start, saying how to write one', () => {
    assert.throws(() => new LdapDirectory({ url: slapd.url, userBase: BASE, groupBase: 'groups' }), (e) => isTunnError(e, 'CONFIG_INVALID') && /--ldap-group-base "groups" is not a distinguished name: write it as .*ou=groups,dc=corp,dc=example/.test(e.message));
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

  // Property guarded: a server-side size limit cannot make an ambiguous email look unique.
  // This account gets at most one entry per search; before the fix (client sizeLimit 2, which
  // makes ldapts swallow "size limit exceeded"), one entry came back and was taken as the user.
  it('treats a search the server cut at its size limit as more than one entry', async () => {
    const limited = (o: { userBase: string; emailAttribute?: string }) => new LdapDirectory({ url: slapd.url, bindDn: LIMITED_BIND_DN, bindPassword: slapd.bindPassword, ca: slapd.caPem, ...o });
    await assert.rejects(limited({ userBase: BASE, emailAttribute: 'objectClass' }).groupsOf('inetOrgPerson'), /more than one entry/);
    assert.deepEqual((await limited({ userBase: `ou=people,${BASE}` }).groupsOf('alice@corp.test')).sort(), ['Engineering', 'staff']);
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
