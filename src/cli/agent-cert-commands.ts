import type { Command } from 'commander';
import type { AgentCertFlags } from './run-agent-cert.ts';

// `tunn cert caa|pin|local` (run-agent-cert.ts, loaded when one runs).

const run = () => import('./run-agent-cert.ts');

/** Adds `caa`, `pin` and `local` under `tunn cert`. */
export function registerAgentCertCommands(cert: Command): void {
  cert
    .command('caa')
    .description("print the CAA records that let only this agent's ACME account issue for <name>")
    .argument('<name>', 'an agent-terminated host name')
    .option('--acme-directory <url>', 'which CA account, when the agent has several')
    .option('--ca-domain <domain>', "the CA's CAA domain when tunn does not know it (e.g. letsencrypt.org)")
    .option('--custom-domain <domain>', 'the custom domain <name> is under (added with --terminate-at agent): also print issuewild ";"')
    .option('--json', 'print JSON')
    .action(async (name: string, o: AgentCertFlags) => (await run()).runCertCaa(name, o));
  cert
    .command('pin')
    .description('print the SPKI SHA-256 pin of the key this agent serves for <name> (curl --pinnedpubkey form)')
    .argument('<name>', 'an agent-terminated host name')
    .option('--json', 'print JSON')
    .action(async (name: string, o: AgentCertFlags) => (await run()).runCertPin(name, o));
  cert
    .command('local')
    .description("certificates this agent holds for names whose TLS ends at the agent (its config dir)")
    .option('--json', 'print JSON')
    .action(async (o: AgentCertFlags) => (await run()).runCertLocal(o));
}
