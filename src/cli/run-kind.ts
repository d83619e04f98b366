import { Agent } from '../agent/agent.ts';
import { attachAgentOutput } from './agent-output.ts';
import type { KindTunnelSpec } from './kind-commands.ts';
import { agentConfigFrom, agentOptionsFrom } from './run-agent.ts';
import { onShutdown } from './shutdown.ts';

// Runs the agent for `tunn tcp|udp|tls`: the flags common with `tunn <target>` (relay, token,
// name, domain, -a, --public, --allow-ip, --json, -q) go through the same resolution, and the
// tunnel is registered with its kind. The ready event's url is tcp://relay:port (public port),
// tcp://host (private: `tunn connect host`) or https://host (tls).

export async function runKindTunnel(spec: KindTunnelSpec, flags: Record<string, unknown>): Promise<void> {
  const { proxyProtocol: _pp, backend: _backend, ...agentFlags } = flags;
  const o = agentOptionsFrom(agentFlags, process.env);
  const display = `${spec.target.host.includes(':') ? `[${spec.target.host}]` : spec.target.host}:${spec.target.port}`;
  const config = agentConfigFrom(o, { protocol: 'http', host: spec.target.host, port: spec.target.port, display });
  const base = config.tunnels[0]!;
  config.tunnels = [
    {
      target: base.target,
      kind: spec.kind,
      name: base.name,
      domain: base.domain,
      allow: base.allow,
      public: base.public,
      allowIps: base.allowIps,
      grantFor: base.grantFor,
      ...(spec.proxyProtocol ? { proxyProtocol: true } : {}),
      ...(spec.backend ? { backend: spec.backend } : {}),
    },
  ];
  const agent = new Agent(config);
  attachAgentOutput(agent, o.json, {}, undefined, flags.color as boolean | undefined);
  if (process.env.TUNN_DEBUG) agent.on('debug', (m) => process.stderr.write(`tunn: debug: ${m}\n`));
  onShutdown(() => agent.stop());
  agent.start();
}
