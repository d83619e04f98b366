import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent } from '../agent/agent.ts';
import { parseTarget } from '../agent/target.ts';
import { ensureAccount } from '../store/accounts.ts';
import { createLogger } from '../lib/logger.ts';
import { startDemoServer } from './demo-server.ts';
import { agentConfigFrom, attachAgentOutput } from './run-agent.ts';
import { startAgentInspector } from './run-inspector.ts';
import { relayOptionsFrom, startRelay } from './run-relay.ts';
import { onShutdown } from './shutdown.ts';

/** `tunn dev [target]`: a relay and an agent in one process, on embedded defaults. */
export async function runDev(targetSpec: string | undefined, flags: Record<string, unknown>): Promise<void> {
  const { name, json, quiet, inspect: inspectFlag, inspectSecrets, color, ...relayFlags } = flags;
  const o = relayOptionsFrom({ ...relayFlags, dev: true, json }, process.env);
  const logger = createLogger({ json: o.json, level: 'warn' });
  const { relay, info, parts } = await startRelay(o, logger);
  const demo = targetSpec ? undefined : await startDemoServer();
  const target = parseTarget(targetSpec ?? String(demo!.port));
  const account = await ensureAccount(parts.store, 'dev@tunn.localhost');
  const { token } = await parts.tokens.issue({ accountId: account.id, kind: 'agent', label: 'tunn dev' });
  // A local try-out: the tunnel is public (run `tunn relay --dev` and `tunn <port> -a …` for private ones).
  const inspect = await startAgentInspector({ inspect: inspectFlag as string | boolean | undefined, inspectSecrets: Boolean(inspectSecrets) }, [target], true);
  const agent = new Agent(
    agentConfigFrom(
      { relay: info.url, token, allow: [], allowIp: [], allowUpgrade: [], public: true, sessions: 2, quiet: Boolean(quiet), json: Boolean(json), insecureTarget: false, inspectSecrets: Boolean(inspectSecrets), name: (name as string | undefined) ?? (demo ? `demo-${randomBytes(2).toString('hex')}` : undefined) },
      target,
      { relayCa: readFileSync(info.caPath!, 'utf8'), ...inspect.agentExtra },
    ),
  );
  attachAgentOutput(agent, Boolean(json), { domain: info.domain, httpPort: info.httpPort, httpsPort: info.httpsPort, caPath: info.caPath, ...inspect.ready }, (urls) => urls.find((u) => u.startsWith('http:')) ?? urls[0]!, color as boolean | undefined);
  if (!json) process.stderr.write(`tunn: dev relay on https://${info.domain}:${info.httpsPort} and http://${info.domain}:${info.httpPort} (dev CA: ${info.caPath})\ntunn: web console: https://${info.domain}:${info.httpsPort}/\n`);
  onShutdown(async () => {
    agent.stop();
    demo?.close();
    await inspect.inspector?.close();
    await relay.close();
  });
  agent.start();
}
