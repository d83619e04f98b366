import type { Command } from 'commander';
import type { TunnelStatus } from '../api/tunnels.ts';
import { apiFlags, client, out, type CommonFlags } from './identity-commands.ts';
import { ago, formatTable } from './table.ts';
import { pathParams } from '../api/client.ts';

// `tunn status` (`tunn ls`) and `tunn stop <name>`: your live tunnels on the relay, and closing
// one from anywhere (src/api/tunnels.ts).

export function formatStatus(tunnels: readonly TunnelStatus[], now = Date.now()): string {
  if (tunnels.length === 0) return 'no live tunnels (start one with `tunn <port>`)\n';
  return formatTable(
    ['NAME', 'URL', 'KIND', 'AGENTS', 'SINCE', 'REQUESTS', 'ALLOWED'],
    tunnels.map((t) => [t.name, t.url, t.kind, `${t.agents} (${t.sessions} conn)`, ago(t.since, now), String(t.requests), t.allowed.join(', ')]),
  );
}

export function registerTunnelCommands(program: Command): void {
  apiFlags(program.command('status').alias('ls').description('your live tunnels on the relay: name, URL, kind, agents, since, requests, who is allowed')).action(async (o: CommonFlags) => {
    const r = await client(o).call((c) => c.v1.tunnels.$get());
    out(o, { event: 'status', tunnels: r.tunnels }, () => formatStatus(r.tunnels));
  });
  apiFlags(program.command('stop').description('close one of your tunnels from anywhere (its agent is told and exits)').argument('<name>', 'the tunnel\'s name or host (from `tunn status`)')).action(async (name: string, o: CommonFlags) => {
    const r = await client(o).call((c) => c.v1.tunnels[':host'].$delete({ param: pathParams({ host: name }) }));
    out(o, { event: 'stopped', tunnels: r.stopped }, () => r.stopped.map((t) => `stopped ${t.url} (${t.requests} requests since ${t.since})\n`).join(''));
  });
}
