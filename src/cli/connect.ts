import type { Command } from 'commander';
import { TunnError } from '../lib/errors.ts';
import { normalizeHost } from '../lib/host.ts';
import { apiFlags, type CommonFlags } from './identity-commands.ts';

// `tunn connect <host>`: reach a private tcp/udp/tls tunnel as yourself (like `cloudflared access
// tcp`). With --listen it listens locally and carries each connection (or UDP peer); without it,
// one connection on stdin/stdout (ssh -o ProxyCommand='tunn connect %h'). The relay decides every
// connection against the tunnel's allow-list; the first check happens before anything listens.

export interface ConnectFlags extends CommonFlags {
  listen?: string;
  udp?: boolean;
  udpFlowIdle?: string;
}

export function registerConnectCommand(program: Command): void {
  apiFlags(
    program
      .command('connect')
      .description('reach a tcp, udp or tls tunnel as yourself: listen locally (--listen) or carry stdin/stdout (ssh ProxyCommand)')
      .argument('<host>', 'the tunnel\'s host, e.g. db.tunn.example.com (a bare name is taken under the relay\'s domain)')
      .option('--listen <[addr:]port>', 'listen here and carry each connection (a bare port listens on 127.0.0.1; 0.0.0.0:PORT lends your identity to the LAN)')
      .option('--udp', 'carry UDP datagrams (a udp tunnel; needs --listen)')
      .option('--udp-flow-idle <seconds>', 'with --udp: end a local UDP flow (one local peer) silent both ways this long (default 60)'),
  ).action(async (host: string, o: ConnectFlags) => runConnect(host, o));
}

/** A bare name (`db`) is a tunnel under the relay's own domain. */
export function tunnelHost(host: string, relayUrl: string): string {
  const h = normalizeHost(host);
  return h.includes('.') ? h : `${h}.${normalizeHost(new URL(relayUrl).hostname)}`;
}

export async function runConnect(hostArg: string, o: ConnectFlags): Promise<void> {
  const [{ readFileSync }, { resolveApiTarget }, { checkRelayUrl }, { localhostAwareLookup }, { ConnectClient }, serve, { printJson }, { onShutdown }, { parseSeconds }] = await Promise.all([
    import('node:fs'),
    import('./api-client.ts'),
    import('./run-agent.ts'),
    import('../agent/target.ts'),
    import('../connect/client.ts'),
    import('../connect/serve.ts'),
    import('./output.ts'),
    import('./shutdown.ts'),
    import('../config/config.ts'),
  ]);
  const kind = o.udp ? 'udp' : 'tcp';
  const listen = o.listen === undefined ? undefined : serve.parseListen(o.listen);
  if (listen && 'error' in listen) throw new TunnError('INVALID_INPUT', listen.error);
  if (kind === 'udp' && !listen) throw new TunnError('INVALID_INPUT', '--udp needs --listen [addr:]port: stdin/stdout carry one TCP connection, not datagrams');
  if (o.udpFlowIdle !== undefined && kind !== 'udp') throw new TunnError('INVALID_INPUT', '--udp-flow-idle applies to UDP flows: add --udp (and --listen [addr:]port), or drop it');
  const flowIdleMs = o.udpFlowIdle === undefined ? undefined : parseSeconds(o.udpFlowIdle, '--udp-flow-idle') * 1000;
  const target = resolveApiTarget(o);
  checkRelayUrl(target.relay);
  if (!target.token) throw new TunnError('AUTH_REQUIRED', `not signed in to ${target.relay}: run \`tunn login --relay ${target.relay}\` or pass --token-file FILE (or set TUNN_TOKEN)`);
  let relayCa: string | undefined;
  if (target.relayCa) {
    try {
      relayCa = readFileSync(target.relayCa, 'utf8');
    } catch (err) {
      throw new TunnError('CONFIG_INVALID', `cannot read --relay-ca ${target.relayCa}: ${(err as Error).message}`);
    }
  }
  const host = tunnelHost(hostArg, target.relay);
  const client = new ConnectClient({ relayUrl: target.relay, token: target.token, relayCa, host, kind, lookup: localhostAwareLookup as never });
  const check = await client.check().catch((err: unknown) => {
    client.close();
    if (target.tokenFrom === 'login' && (err as TunnError).code === 'AUTH_INVALID_TOKEN') throw new TunnError('AUTH_INVALID_TOKEN', `the sign-in saved for ${target.relay} no longer works (${(err as Error).message}): run \`tunn login --relay ${target.relay}\``);
    throw err;
  });
  if ((check.tunnelKind === 'udp') !== (kind === 'udp')) {
    client.close();
    throw new TunnError('INVALID_INPUT', check.tunnelKind === 'udp' ? `${host} is a udp tunnel: add --udp (and --listen [addr:]port)` : `${host} is a ${check.tunnelKind} tunnel, which carries TCP: drop --udp`);
  }
  const note = (text: string): void => void process.stderr.write(`tunn: ${text}\n`);
  const events = {
    refused: (peer: string, message: string) => (o.json ? printJson({ event: 'refused', peer, message }) : note(`connection from ${peer} refused: ${message}`)),
  };
  if (!listen) {
    // stdout carries the connection: everything else goes to stderr.
    try {
      await serve.serveStdio(() => client.open(), process.stdin, process.stdout);
    } finally {
      client.close();
    }
    return;
  }
  const l = await (kind === 'udp' ? serve.serveUdp(() => client.open(), listen, events, flowIdleMs) : serve.serveTcp(() => client.open(), listen, events));
  const at = serve.formatListen(l.address);
  if (o.json) printJson({ event: 'ready', listen: at, host, kind: check.tunnelKind, email: check.email });
  else note(`${host} (${check.tunnelKind}) → listening on ${kind === 'udp' ? 'udp://' : ''}${at} as ${check.email}; Ctrl-C to stop`);
  onShutdown(async () => {
    await l.close();
    client.close();
  });
}
