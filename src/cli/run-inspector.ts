import type { AgentConfig } from '../agent/agent.ts';
import { parseInspectAddress, startInspector, type Inspector } from '../agent/inspector/index.ts';
import type { Target } from '../agent/target.ts';

// `--inspect ADDR`, `--no-inspect`, `--inspect-secrets`: starts the agent's inspector (on by
// default) and returns what the agent and its ready line need.

export interface InspectFlags {
  inspect?: string | boolean;
  inspectSecrets?: boolean;
}

export async function startAgentInspector(flags: InspectFlags, targets: Target[], verifyTargetTls: boolean): Promise<{ inspector?: Inspector; agentExtra: Partial<AgentConfig>; ready: Record<string, unknown> }> {
  const v = flags.inspect;
  if (v === false || (typeof v === 'string' && ['false', 'off', 'no', '0'].includes(v.toLowerCase()))) return { agentExtra: {}, ready: {} };
  const address = parseInspectAddress(typeof v === 'string' ? v : undefined);
  const inspector = await startInspector({ address, targets, verifyTargetTls, showSecrets: Boolean(flags.inspectSecrets) });
  return { inspector, agentExtra: { inspect: inspector.watch }, ready: { inspectUrl: inspector.url } };
}
