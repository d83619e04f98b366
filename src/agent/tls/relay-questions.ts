import type { z } from 'zod';
import type { DecisionSource } from '../../auth/agent-decisions.ts';
import { TunnError } from '../../lib/errors.ts';
import { agentTlsResultSchemas, type AgentTlsOp, type AgentTlsRequest } from '../../protocol/messages.ts';
import type { Dns01Requester } from './dns01-requester.ts';

// The agent's DecisionSource and Dns01Requester over the control stream: each call is one
// `tls-request` to the relay (the policy decision point, and the DNS of its zone), whose
// `tls-reply` is read with the schema of the op asked (src/protocol/messages.ts).

/** Sends one question to the relay and resolves with its unparsed result (Agent.ask). */
export type AskRelay = (request: AgentTlsRequest, timeoutMs?: number) => Promise<unknown>;

async function asked<K extends AgentTlsOp>(ask: AskRelay, op: K, request: Extract<AgentTlsRequest, { op: K }>, timeoutMs?: number) {
  const raw = await ask(request, timeoutMs);
  const r = agentTlsResultSchemas[op].safeParse(raw);
  if (!r.success) throw new TunnError('PROTOCOL_ERROR', `the relay's answer to ${op} is not what this agent reads: ${r.error.issues[0]?.message ?? 'invalid'}`);
  return r.data as z.infer<(typeof agentTlsResultSchemas)[K]>;
}

export function relayDecisionSource(ask: AskRelay): DecisionSource {
  return {
    decide: (q) => asked(ask, 'decide', { op: 'decide', ...q }),
    redeem: async (q) => (await asked(ask, 'redeem', { op: 'redeem', ...q, code: q.code })) ?? undefined,
    session: async (q) => (await asked(ask, 'session', { op: 'session', host: q.host, cookie: q.cookie })) ?? undefined,
    logout: async (q) => void (await asked(ask, 'logout', { op: 'logout', ...q })),
  };
}

/** DNS-01 through the relay's DNS: publishing waits until the record is served, so it gets two minutes. */
export function relayDns01Requester(ask: AskRelay): Dns01Requester {
  return {
    present: async (recordName, value) => void (await asked(ask, 'dns01-present', { op: 'dns01-present', recordName, value }, 120_000)),
    cleanup: async (recordName, value) => void (await asked(ask, 'dns01-cleanup', { op: 'dns01-cleanup', recordName, value })),
  };
}
