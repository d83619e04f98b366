import { readFileSync } from 'node:fs';
import { Agent, type AgentConfig } from '../agent/agent.ts';
import { parseTarget, type Target } from '../agent/target.ts';
import { agentDefaults, agentSchema, fromEnv, fromFile, resolveConfig, type AgentOptions } from '../config/config.ts';
import { parseBasicAuth } from '../auth/basic-auth.ts';
import { parseIpAllowList } from '../auth/ip-allow.ts';
import { parseDuration } from '../auth/grants.ts';
import { randomToken } from '../lib/ids.ts';
import { parseAllowList } from '../auth/policy.ts';
import { parseRateLimit } from '../auth/rate-limit.ts';
import { parseAllowUpgrade } from '../relay/upgrades.ts';
import { TunnError } from '../lib/errors.ts';
import { checkTunnelOptions } from '../protocol/messages.ts';
import { AGENT_PING_INTERVAL_MS, AGENT_PING_TIMEOUT_MS } from '../protocol/timing.ts';
import { loadCredentials, RelayApi } from './api-client.ts';
import { terminateAtForDomain } from './domain-tls-default.ts';
import { attachAgentOutput } from './agent-output.ts';
import { agentCrossChecks } from './agent-checks.ts';
import { agentTlsSettings } from './agent-tls-flags.ts';
import { wireAgentTls } from './run-agent-tls.ts';
import { readUserConfig } from './user-config.ts';
import { startAgentInspector } from './run-inspector.ts';
import { onShutdown } from './shutdown.ts';

export function agentOptionsFrom(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): AgentOptions {
  // --no-color is output only (like NO_COLOR): attachAgentOutput reads it from the flags.
  const { config, color: _color, ...rest } = flags;
  const envLayer = fromEnv(Object.keys(agentSchema.shape), env);
  const fileLayer = fromFile(config as string | undefined);
  // The user's defaults (`tunn config set`), then what `tunn login` saved for the chosen relay.
  const userLayer = readUserConfig(env);
  const saved = loadCredentials(firstRelay((rest.relay ?? envLayer.relay ?? fileLayer.relay ?? userLayer.relay) as string | undefined), env);
  const savedLayer = saved ? { relay: saved.relay, token: saved.token, relayCa: saved.relayCa } : {};
  return resolveConfig(agentSchema, [agentDefaults, userLayer, savedLayer, fileLayer, envLayer, rest], agentCrossChecks);
}

/** The first relay of `--relay` (one URL, or a comma list of a cluster's relays): sign-ins are saved for it. */
export function firstRelay(relay: string): string;
export function firstRelay(relay: string | undefined): string | undefined;
export function firstRelay(relay: string | undefined): string | undefined {
  return relay?.split(',')[0]?.trim();
}

/** The relay URL must be https:// (the agent dials TLS): a missing scheme or http:// says so before anything connects. */
export function checkRelayUrl(relays: string): void {
  for (const relay of relays.split(',').map((r) => r.trim())) checkOneRelayUrl(relay);
}

function checkOneRelayUrl(relay: string): void {
  const u = new URL(relay);
  if (u.protocol === 'https:') return;
  if (u.protocol === 'http:') throw new TunnError('CONFIG_INVALID', `--relay ${relay}: agents reach the relay over TLS; use https://${u.host}`);
  // "tunn.example.com:8443" parses as scheme "tunn.example.com:".
  throw new TunnError('CONFIG_INVALID', `--relay ${relay}: the URL needs the https:// scheme, e.g. https://${relay.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')}`);
}

export function agentConfigFrom(o: AgentOptions, target: Target, extra: Partial<AgentConfig> = {}): AgentConfig {
  checkRelayUrl(o.relay);
  let relayCa: string | undefined;
  if (o.relayCa) {
    try {
      relayCa = readFileSync(o.relayCa, 'utf8');
    } catch (err) {
      throw new TunnError('CONFIG_INVALID', `cannot read --relay-ca ${o.relayCa}: ${(err as Error).message}`);
    }
  }
  // Edge controls are checked here too, so a typo fails before anything connects.
  parseAllowList(o.allow);
  if (o.allowIp.length) parseIpAllowList(o.allowIp);
  const allowUpgrade = parseAllowUpgrade(o.allowUpgrade.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean));
  const basicAuth = o.basicAuth === undefined ? undefined : parseBasicAuth(o.basicAuth);
  const rateLimit =
    o.rateLimit === undefined && o.rateLimitTunnel === undefined
      ? undefined
      : { perIp: o.rateLimit === undefined ? undefined : parseRateLimit(o.rateLimit, '--rate-limit'), perTunnel: o.rateLimitTunnel === undefined ? undefined : parseRateLimit(o.rateLimitTunnel, '--rate-limit-tunnel') };
  // One ref per run: reconnects re-send it, so the grants are counted from the first registration.
  const grantFor = o.for === undefined ? undefined : { seconds: parseDuration(o.for), ref: randomToken(16) };
  // The same rules the relay applies on register (src/protocol/messages.ts), before anything connects.
  checkTunnelOptions({ allow: o.allow, public: o.public, grantFor });
  const hostHeader = o.hostHeader === 'rewrite' ? `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}` : o.hostHeader;
  return {
    relayUrl: o.relay,
    token: o.token,
    relayCa,
    tunnels: [
      {
        target,
        kind: 'http',
        name: o.name,
        domain: o.domain,
        allow: o.allow,
        public: o.public,
        hostHeader,
        basicAuth: basicAuth ? { user: basicAuth.user, pass: basicAuth.pass } : undefined,
        allowIps: o.allowIp.length ? o.allowIp : undefined,
        rateLimit,
        allowUpgrade: allowUpgrade.length ? allowUpgrade : undefined,
        grantFor,
      },
    ],
    sessions: o.sessions,
    verifyTargetTls: !o.insecureTarget,
    pingIntervalMs: AGENT_PING_INTERVAL_MS,
    pingTimeoutMs: AGENT_PING_TIMEOUT_MS,
    backoffMinMs: 250,
    backoffMaxMs: 5_000,
    logRequests: !o.quiet,
    ...extra,
  };
}

export { attachAgentOutput } from './agent-output.ts';

export async function runAgent(targetSpec: string, flags: Record<string, unknown>): Promise<void> {
  const target = parseTarget(targetSpec);
  const o = agentOptionsFrom(flags, process.env);
  // On a custom domain added with `tunn domain add D --terminate-at agent`, TLS ends at the agent unless told otherwise.
  if (o.terminateAt === undefined && o.domain && (await terminateAtForDomain(new RelayApi({ relay: firstRelay(o.relay), token: o.token, relayCa: o.relayCa }), o.domain)) === 'agent') {
    o.terminateAt = 'agent';
    if (!o.json) process.stderr.write(`tunn: ${o.domain} was added with --terminate-at agent: TLS ends at this agent\n`);
  }
  const tlsSettings = agentTlsSettings(o);
  // TLS ending at the agent (issue 12): every flag was read and checked; the agent serves `tls` streams.
  const tls = tlsSettings.terminateAt === 'agent' ? wireAgentTls(agentConfigFrom(o, target), o, tlsSettings) : undefined;
  const config = tls?.config ?? agentConfigFrom(o, target);
  const inspect = await startAgentInspector(o, [target], config.verifyTargetTls);
  const agent = new Agent({ ...config, ...inspect.agentExtra });
  attachAgentOutput(agent, o.json, inspect.ready, undefined, flags.color as boolean | undefined);
  tls?.attach(agent);
  // Failures the agent handled (a stream a visitor reset, a session error, a refused stream kind), with what was being done.
  if (process.env.TUNN_DEBUG) agent.on('debug', (m) => process.stderr.write(`tunn: debug: ${m}\n`));
  // A token `tunn login` saved and the relay now refuses: signing in again is the fix.
  if (loadCredentials(firstRelay(o.relay))?.token === o.token) {
    agent.on('fatal', (err) => {
      if (err.code === 'AUTH_TOKEN_REVOKED' || err.code === 'AUTH_INVALID_TOKEN') process.stderr.write(`tunn: the sign-in saved for ${new URL(firstRelay(o.relay)).origin} no longer works: run \`tunn login --relay ${new URL(firstRelay(o.relay)).origin}\`\n`);
    });
  }
  // A stopped agent (fatal error, replaced) takes its inspector down, so the process exits.
  agent.on('state', (s) => void (s === 'stopped' && inspect.inspector?.close()));
  onShutdown(async () => {
    agent.stop();
    tls?.close();
    await inspect.inspector?.close();
  });
  agent.start();
}
