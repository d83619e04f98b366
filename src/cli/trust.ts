import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { hasNameConstraints } from '../certs/dev-ca.ts';
import { TunnError } from '../lib/errors.ts';

// `tunn trust` / `tunn untrust`: put the relay's dev CA into the system trust store and into
// the NSS databases browsers keep (Chromium's ~/.pki/nssdb, Firefox profiles), as mkcert does,
// so private tunnels' HTTPS sign-in works in `tunn dev` with no warning. Only a name-constrained
// dev CA is installed (src/certs/dev-ca.ts): trusted system-wide, it can vouch for nothing but the
// dev domain, localhost and loopback addresses.

/** Every tunn CA in a store carries this nickname prefix (NSS) or file prefix (system store). */
const NICK_PREFIX = 'tunn dev CA';
const FILE_PREFIX = 'tunn-dev-ca-';

export interface TrustPlan {
  /** The dev CA certificate (PEM file). */
  caPath: string;
  /** Whose browsers: NSS databases are looked for under this home directory. */
  home: string;
  /** System anchors dir, or false to leave the system store alone. */
  systemStore: string | false;
  /** Run after the system store changed (update-ca-certificates); none for a store given by path. */
  systemUpdate?: string[];
  /** Leave browsers' NSS databases alone. */
  skipBrowsers?: boolean;
  certutil?: string;
}

export interface TrustReport {
  ca: string;
  fingerprint: string;
  system?: string;
  browsers: string[];
}

/** The system store of this machine and the command that refreshes it, if one is known. */
export function systemStoreOfThisMachine(): { dir: string; update: string[] } | undefined {
  const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
  if (has('update-ca-certificates')) return { dir: '/usr/local/share/ca-certificates', update: ['update-ca-certificates'] };
  if (has('update-ca-trust')) return { dir: '/etc/pki/ca-trust/source/anchors', update: ['update-ca-trust', 'extract'] };
  return undefined;
}

/** NSS databases (cert9.db) of the user's browsers under `home`. */
export function browserDatabases(home: string): string[] {
  const dbs = [join(home, '.pki/nssdb'), join(home, 'snap/chromium/current/.pki/nssdb')];
  for (const profiles of [join(home, '.mozilla/firefox'), join(home, 'snap/firefox/common/.mozilla/firefox')]) {
    if (!existsSync(profiles)) continue;
    for (const p of readdirSync(profiles)) dbs.push(join(profiles, p));
  }
  return dbs.filter((d) => existsSync(join(d, 'cert9.db')));
}

function readCa(caPath: string): { pem: string; fingerprint: string; subject: string } {
  let pem: string;
  try {
    pem = readFileSync(caPath, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new TunnError('NOT_FOUND', missing ? `no dev CA at ${caPath}: start \`tunn dev\` (or \`tunn relay --dev\`) once to create it, or pass the data dir it runs with (--data-dir DIR)` : `cannot read the dev CA ${caPath}: ${(err as Error).message}`);
  }
  const cert = new X509Certificate(pem);
  if (!cert.ca) throw new TunnError('INVALID_INPUT', `${caPath} is not a CA certificate`);
  // A CA trusted by the whole system that can vouch for any name is a weapon: only constrained ones.
  if (!hasNameConstraints(pem)) {
    throw new TunnError('FORBIDDEN', `${caPath} is an old dev CA that could vouch for any name, so it is not trusted: start \`tunn dev\` (or \`tunn relay --dev\`) once to replace it with one limited to the dev domain, then run \`tunn trust\` again`);
  }
  return { pem, fingerprint: cert.fingerprint256.replace(/:/g, '').toLowerCase(), subject: cert.subject.replace(/^CN=/, '') };
}

function certutil(plan: TrustPlan, args: string[]): string {
  const bin = plan.certutil ?? 'certutil';
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new TunnError('UNAVAILABLE', `${bin} is missing, so browsers cannot be told: install libnss3-tools (Debian, Ubuntu) or nss-tools (Fedora), or pass --no-browsers`);
  }
  if (r.status !== 0) throw new TunnError('UNAVAILABLE', `certutil ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** The nicknames of tunn CAs in one NSS database. */
function tunnNicknames(plan: TrustPlan, db: string): string[] {
  return certutil(plan, ['-L', '-d', `sql:${db}`])
    .split('\n')
    .map((l) => /^(tunn dev CA.*?)\s{2,}\S*,\S*,\S*\s*$/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined);
}

function runUpdate(cmd: string[] | undefined): void {
  if (!cmd) return;
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new TunnError('UNAVAILABLE', `${cmd.join(' ')} failed: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
}

function writableSystemStore(dir: string, verb: 'trust' | 'untrust', fix: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw systemStoreDenied(dir, verb, fix, err);
  }
}

function systemStoreDenied(dir: string, verb: 'trust' | 'untrust', fix: string, err: unknown): TunnError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') {
    return new TunnError('FORBIDDEN', `the system trust store ${dir} needs root: run \`sudo tunn ${verb} --no-browsers ${fix}\` for it, and \`tunn ${verb} --no-system ${fix}\` as yourself for the browsers`);
  }
  return new TunnError('UNAVAILABLE', `cannot change the system trust store ${dir}: ${(err as Error).message}`);
}

/** Installs the dev CA; an earlier tunn CA in the same stores is replaced. */
export function trust(plan: TrustPlan, fix = ''): TrustReport {
  const ca = readCa(plan.caPath);
  const nick = `${NICK_PREFIX} ${ca.fingerprint.slice(0, 16)}`;
  const report: TrustReport = { ca: plan.caPath, fingerprint: ca.fingerprint, browsers: [] };
  if (plan.systemStore !== false) {
    const dir = plan.systemStore;
    writableSystemStore(dir, 'trust', fix);
    const file = join(dir, `${FILE_PREFIX}${ca.fingerprint.slice(0, 16)}.crt`);
    try {
      for (const f of readdirSync(dir)) if (f.startsWith(FILE_PREFIX) && join(dir, f) !== file) rmSync(join(dir, f));
      copyFileSync(plan.caPath, file);
    } catch (err) {
      throw systemStoreDenied(dir, 'trust', fix, err);
    }
    runUpdate(plan.systemUpdate);
    report.system = file;
  }
  if (!plan.skipBrowsers) {
    for (const db of browserDatabases(plan.home)) {
      for (const old of tunnNicknames(plan, db)) if (old !== nick) certutil(plan, ['-D', '-d', `sql:${db}`, '-n', old]);
      // C,, : a CA trusted to issue server certificates (not email or code signing).
      certutil(plan, ['-A', '-d', `sql:${db}`, '-t', 'C,,', '-n', nick, '-i', plan.caPath]);
      report.browsers.push(db);
    }
  }
  return report;
}

/** Removes every tunn dev CA from the stores (the current one and any replaced earlier). */
export function untrust(plan: Omit<TrustPlan, 'caPath'>, fix = ''): { system: string[]; browsers: string[] } {
  const removed = { system: [] as string[], browsers: [] as string[] };
  if (plan.systemStore !== false && existsSync(plan.systemStore)) {
    const dir = plan.systemStore;
    try {
      for (const f of readdirSync(dir)) {
        if (!f.startsWith(FILE_PREFIX)) continue;
        rmSync(join(dir, f));
        removed.system.push(join(dir, f));
      }
    } catch (err) {
      throw systemStoreDenied(dir, 'untrust', fix, err);
    }
    if (removed.system.length) runUpdate(plan.systemUpdate ? [...plan.systemUpdate, ...(plan.systemUpdate[0] === 'update-ca-certificates' ? ['--fresh'] : [])] : undefined);
  }
  if (!plan.skipBrowsers) {
    for (const db of browserDatabases(plan.home)) {
      const nicks = tunnNicknames(plan as TrustPlan, db);
      for (const n of nicks) certutil(plan as TrustPlan, ['-D', '-d', `sql:${db}`, '-n', n]);
      if (nicks.length) removed.browsers.push(db);
    }
  }
  return removed;
}
