import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { freePort } from './ports.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Attribute, Change, Client } from 'ldapts';
import { createCa, issueLeaf } from '../../src/certs/dev-ca.ts';

// A throwaway OpenLDAP (Debian slapd) for tests: config in a temp dir (slapd.conf), an mdb
// database, the memberof overlay (so users in groupOfNames entries get memberOf), served over
// ldaps:// on a port found free at run time with a certificate from a test CA. The directory
// is dc=corp,dc=test with ou=people, ou=groups and ou=other (groups only memberOf reveals
// when the group base is ou=groups). stop()/start() take it down and bring it back on the
// same port and data, for "directory unreachable" tests.

export const BASE = 'dc=corp,dc=test';
export const ADMIN_DN = `cn=admin,${BASE}`;
export const BIND_DN = `cn=tunn,ou=services,${BASE}`;
/** A second service account (same password) that the server sends at most one entry per search. */
export const LIMITED_BIND_DN = `cn=tunn-limited,ou=services,${BASE}`;

export interface Slapd {
  url: string;
  /** The same server over plain ldap:// (for StartTLS). */
  plainUrl: string;
  caPem: string;
  caPath: string;
  bindPassword: string;
  /** Adds a person with this email (uid = the part before @). */
  addUser(email: string): Promise<string>;
  /** Adds a groupOfNames under ou=groups (or ou=other) with these member DNs. */
  addGroup(cn: string, members: string[], ou?: 'groups' | 'other'): Promise<string>;
  /** Adds a groupOfUniqueNames under ou=groups (members in uniqueMember; the memberof overlay does not follow these); `moreCn` are further cn values, listed before the RDN's. */
  addUniqueGroup(cn: string, members: string[], moreCn?: string[]): Promise<string>;
  addMember(groupDn: string, memberDn: string): Promise<void>;
  removeMember(groupDn: string, memberDn: string): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startSlapd(): Promise<Slapd> {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-slapd-'));
  const data = join(dir, 'data');
  mkdirSync(data);
  const ca = await createCa('tunn test LDAP CA');
  const leaf = await issueLeaf(ca, ['localhost', '127.0.0.1']);
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'cert.pem'), leaf.certPem);
  writeFileSync(join(dir, 'key.pem'), leaf.keyPem, { mode: 0o600 });
  const adminPassword = 'admin-' + Math.random().toString(36).slice(2);
  const bindPassword = 'svc-' + Math.random().toString(36).slice(2);
  writeFileSync(
    join(dir, 'slapd.conf'),
    `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile ${join(dir, 'slapd.pid')}
argsfile ${join(dir, 'slapd.args')}
TLSCACertificateFile ${join(dir, 'ca.pem')}
TLSCertificateFile ${join(dir, 'cert.pem')}
TLSCertificateKeyFile ${join(dir, 'key.pem')}
database mdb
maxsize 10485760
suffix "${BASE}"
rootdn "${ADMIN_DN}"
rootpw ${adminPassword}
directory ${data}
limits dn.exact="${LIMITED_BIND_DN}" size=1
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="${BIND_DN}" read by dn.exact="${LIMITED_BIND_DN}" read by * none
`,
  );
  const port = await freePort();
  const url = `ldaps://127.0.0.1:${port}`;
  const plainUrl = `ldap://127.0.0.1:${await freePort()}`;
  let proc: ChildProcess | undefined;
  const log: string[] = [];

  async function start(): Promise<void> {
    proc = spawn('/usr/sbin/slapd', ['-f', join(dir, 'slapd.conf'), '-h', `${url}/ ${plainUrl}/`, '-d', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d: Buffer) => log.push(d.toString()));
    proc.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`slapd exited ${proc.exitCode}: ${log.join('')}`);
      const c = new Client({ url, tlsOptions: { ca: [ca.certPem] }, connectTimeout: 1000 });
      try {
        await c.bind(ADMIN_DN, adminPassword);
        await c.unbind();
        return;
      } catch {
        await c.unbind().catch(() => {});
        if (Date.now() > deadline) throw new Error(`slapd did not answer on ${url}: ${log.join('')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async function stop(): Promise<void> {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    p.kill('SIGTERM');
    await once(p, 'exit');
  }

  async function admin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = new Client({ url, tlsOptions: { ca: [ca.certPem] } });
    try {
      await c.bind(ADMIN_DN, adminPassword);
      return await fn(c);
    } finally {
      await c.unbind().catch(() => {});
    }
  }

  await start();
  await admin(async (c) => {
    await c.add(BASE, { objectClass: ['dcObject', 'organization'], dc: 'corp', o: 'Corp' });
    for (const ou of ['people', 'groups', 'other', 'services']) await c.add(`ou=${ou},${BASE}`, { objectClass: 'organizationalUnit', ou });
    await c.add(BIND_DN, { objectClass: ['person', 'simpleSecurityObject'], cn: 'tunn', sn: 'tunn', userPassword: bindPassword });
    await c.add(LIMITED_BIND_DN, { objectClass: ['person', 'simpleSecurityObject'], cn: 'tunn-limited', sn: 'tunn', userPassword: bindPassword });
  });

  return {
    url,
    plainUrl,
    caPem: ca.certPem,
    caPath: join(dir, 'ca.pem'),
    bindPassword,
    addUser: (email) =>
      admin(async (c) => {
        const uid = email.split('@')[0]!;
        const dn = `uid=${uid},ou=people,${BASE}`;
        await c.add(dn, { objectClass: 'inetOrgPerson', uid, cn: uid, sn: uid, mail: email });
        return dn;
      }),
    addGroup: (cn, members, ou = 'groups') =>
      admin(async (c) => {
        const dn = `cn=${cn},ou=${ou},${BASE}`;
        // groupOfNames needs at least one member: the bind account stays in every group, so the last person can be removed.
        await c.add(dn, { objectClass: 'groupOfNames', cn, member: [...members, BIND_DN] });
        return dn;
      }),
    addUniqueGroup: (cn, members, moreCn = []) =>
      admin(async (c) => {
        const dn = `cn=${cn},ou=groups,${BASE}`;
        await c.add(dn, { objectClass: 'groupOfUniqueNames', cn: [...moreCn, cn], uniqueMember: [...members, BIND_DN] });
        return dn;
      }),
    addMember: (groupDn, memberDn) => admin((c) => c.modify(groupDn, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [memberDn] }) }))),
    removeMember: (groupDn, memberDn) => admin((c) => c.modify(groupDn, new Change({ operation: 'delete', modification: new Attribute({ type: 'member', values: [memberDn] }) }))),
    stop,
    start,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
