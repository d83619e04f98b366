import { Agent } from '../agent/agent.ts';
import { TunnError } from '../lib/errors.ts';
import { attachAgentOutput } from './agent-output.ts';
import { agentTlsSettings } from './agent-tls-flags.ts';
import { RelayApi } from './api-client.ts';
import { terminateAtForDomain } from './domain-tls-default.ts';
import type { KindTunnelSpec } from './kind-commands.ts';
import { agentConfigFrom, agentOptionsFrom, firstRelay } from './run-agent.ts';
import { wireAgentTls } from './run-agent-tls.ts';
import { onShutdown } from './shutdown.ts';

// Runs the agent for `tunn tcp|udp|tls`: the flags common with `tunn <target>` (relay, token,
// name, domain, -a, --public, --allow-ip, --json, -q) go through the same resolution, and the
// tunnel is registered with its kind. The ready event's url is tcp://relay:port (public port),
// tcp://host (private: `tunn connect host`) or https://host (tls).
// `tunn tls --backend tcp --terminate-at agent` (issue 12) wires TLS that ends at this agent
// exactly as `tunn <target> --terminate-at agent` does (run-agent-tls.ts), except that each
// terminated connection goes to the target as plain TCP rather than as HTTP requests.

export async function runKindTunnel(spec: KindTunnelSpec, flags: Record<string, unknown>): Promise<void> {
  const { proxyProtocol: _pp, backend: _backend, alpn: _alpn, ...agentFlags } = flags;
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
  // Only `--backend tcp` has TLS for the agent to end; a --terminate-at from the user's defaults or
  // the environment means nothing to tcp, udp or raw tls tunnels (on the command line it is refused).
  const endsTls = spec.kind === 'tls' && spec.backend === 'tcp';
  if (!endsTls) o.terminateAt = undefined;
  // On a custom domain added with `tunn domain add D --terminate-at agent`, TLS ends at the agent unless told otherwise.
  if (endsTls && o.terminateAt === undefined && o.domain && (await terminateAtForDomain(new RelayApi({ relay: firstRelay(o.relay), token: o.token, relayCa: o.relayCa }), o.domain)) === 'agent') {
    o.terminateAt = 'agent';
    if (!o.json) process.stderr.write(`tunn: ${o.domain} was added with --terminate-at agent: TLS ends at this agent\n`);
  }
  if (spec.alpn && o.terminateAt !== 'agent') throw new TunnError('INVALID_INPUT', '--alpn only applies with --terminate-at agent: the relay\'s own TLS for --backend tcp negotiates http/1.1 only');
  const tlsSettings = endsTls ? { ...agentTlsSettings(o), ...(spec.alpn ? { alpn: spec.alpn } : {}) } : undefined;
  const tls = tlsSettings?.terminateAt === 'agent' ? wireAgentTls(config, o, tlsSettings) : undefined;
  const agent = new Agent(tls?.config ?? config);
  attachAgentOutput(agent, o.json, {}, undefined, flags.color as boolean | undefined);
  tls?.attach(agent);
  if (process.env.TUNN_DEBUG) agent.on('debug', (m) => process.stderr.write(`tunn: debug: ${m}\n`));
  onShutdown(() => {
    agent.stop();
    tls?.close();
  });
  agent.start();
}
