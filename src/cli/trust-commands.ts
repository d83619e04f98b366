import type { Command } from 'commander';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { relayDefaults } from '../config/config.ts';
import { TunnError } from '../lib/errors.ts';
import { out } from './identity-commands.ts';
import type { TrustPlan } from './trust.ts';

// trust.ts loads the dev CA's x509 stack: only when these commands run (an agent does not carry it).
const trustModule = () => import('./trust.ts');

// `tunn trust` / `tunn untrust` (src/cli/trust.ts).

interface TrustFlags {
  dataDir?: string;
  ca?: string;
  system?: boolean;
  browsers?: boolean;
  systemStore?: string;
  json?: boolean;
}

async function planFrom(o: TrustFlags, verb: 'trust' | 'untrust'): Promise<TrustPlan & { fix: string }> {
  const dataDir = resolve(o.dataDir ?? process.env.TUNN_DATA_DIR ?? relayDefaults(true).dataDir!);
  const caPath = resolve(o.ca ?? join(dataDir, 'dev-ca.pem'));
  let systemStore: string | false = false;
  let systemUpdate: string[] | undefined;
  if (o.system !== false) {
    if (o.systemStore) systemStore = resolve(o.systemStore);
    else {
      const found = (await trustModule()).systemStoreOfThisMachine();
      if (!found) throw new TunnError('UNAVAILABLE', `this system has no update-ca-certificates or update-ca-trust, so tunn does not know its trust store: pass --system-store DIR, or --no-system to ${verb} the browsers only`);
      systemStore = found.dir;
      systemUpdate = found.update;
    }
  }
  const fix = o.ca ? `--ca ${caPath}` : `--data-dir ${dataDir}`;
  return { caPath, home: process.env.HOME || homedir(), systemStore, systemUpdate, skipBrowsers: o.browsers === false, fix };
}

function flags(cmd: Command): Command {
  return cmd
    .option('--data-dir <dir>', "the dev relay's data dir (default: `tunn dev`'s, ./.tunn/relay; env TUNN_DATA_DIR)")
    .option('--no-system', 'leave the system trust store alone')
    .option('--no-browsers', "leave the browsers' NSS databases alone")
    .option('--system-store <dir>', 'the system trust store dir (default: found from update-ca-certificates or update-ca-trust)')
    .option('--json', 'print JSON');
}

export function registerTrustCommands(program: Command): void {
  flags(program.command('trust').description("trust the dev relay's CA in the system store and your browsers (name-constrained to the dev domain), so `tunn dev` HTTPS needs no warning"))
    .option('--ca <file>', 'the dev CA certificate, if not <data dir>/dev-ca.pem')
    .action(async (o: TrustFlags) => {
      const plan = await planFrom(o, 'trust');
      const r = (await trustModule()).trust(plan, plan.fix);
      out(o, { event: 'trusted', ...r }, () => {
        const where = [...(r.system ? [`the system store (${r.system})`] : []), ...r.browsers.map((b) => `browser database ${b}`)];
        const noBrowsers = plan.skipBrowsers ? '' : r.browsers.length ? '' : 'tunn: no browser databases found (start Chromium or Firefox once, then run `tunn trust` again)\n';
        return `trusted the dev CA ${r.ca} (SHA-256 ${r.fingerprint.slice(0, 16)}…) in:\n${where.map((w) => `  ${w}\n`).join('') || '  (nothing)\n'}${noBrowsers}restart your browser for it to take effect\n`;
      });
    });
  flags(program.command('untrust').description('remove every tunn dev CA that `tunn trust` installed')).action(async (o: TrustFlags) => {
    const plan = await planFrom(o, 'untrust');
    const r = (await trustModule()).untrust(plan, plan.fix);
    out(o, { event: 'untrusted', ...r }, () => {
      const all = [...r.system, ...r.browsers];
      return all.length ? `removed tunn dev CAs from:\n${all.map((w) => `  ${w}\n`).join('')}` : 'no tunn dev CA was trusted here\n';
    });
  });
}
