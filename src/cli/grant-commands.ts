import type { Command } from 'commander';
import { apiFlags, client, out, type CommonFlags } from './identity-commands.ts';
import { pathParams } from '../api/client.ts';

// tunn grant add|list|rm: access to a live tunnel that ends on its own (src/api/grants.ts).

interface Grant {
  id: string;
  host: string;
  entry: string;
  via: 'for' | 'grant';
  expiresAt: string;
}

function showGrant(g: Grant): string {
  return `${g.id}  ${g.host}  ${g.entry.padEnd(28)}  until ${g.expiresAt}${g.via === 'for' ? '  (--for)' : ''}\n`;
}

export function registerGrantCommands(program: Command): void {
  const grant = program.command('grant').description('access to one of your tunnels that ends on its own');
  apiFlags(
    grant
      .command('add')
      .description('let someone reach a tunnel for a limited time, e.g. tunn grant add demo.tunn.example.com bob@client.com --for 2h')
      .argument('<host>', 'the tunnel hostname')
      .argument('<who>', 'email, @domain, group:name or idp:name')
      .requiredOption('--for <duration>', 'how long: 30m, 2h, 1d, 1w'),
  ).action(async (host: string, who: string, o: CommonFlags & { for: string }) => {
    const r = await client(o).call((c) => c.v1.grants.$post({ json: { host, who, for: o.for } }));
    out(o, { event: 'grant', grant: r.grant }, () => `${r.grant.entry} may reach ${r.grant.host} until ${r.grant.expiresAt} (id ${r.grant.id})\n`);
  });
  apiFlags(grant.command('list').description('grants that have not ended').option('--host <host>', 'only this tunnel')).action(async (o: CommonFlags & { host?: string }) => {
    const r = await client(o).call((c) => c.v1.grants.$get({ query: { host: o.host } }));
    out(o, { event: 'grants', grants: r.grants }, () => r.grants.map(showGrant).join('') || 'no grants\n');
  });
  apiFlags(
    grant
      .command('rm')
      .alias('remove')
      .description('end a grant now: by id, or by tunnel host and who')
      .argument('<id-or-host>')
      .argument('[who]'),
  ).action(async (target: string, who: string | undefined, o: CommonFlags) => {
    const r = await client(o).call((c) => (who ? c.v1.grants.$delete({ query: { host: target, who } }) : c.v1.grants[':id'].$delete({ param: pathParams({ id: target }) })));
    out(o, { event: 'grant_removed', removed: r.removed }, () => `ended ${r.removed} grant${r.removed === 1 ? '' : 's'}\n`);
  });
}
