import { Option, type Command } from 'commander';
import { TunnError } from '../lib/errors.ts';
import { secretOption } from './secret-flags.ts';

// `tunn tcp|udp|tls <target>`: tunnels that carry more than HTTP (issue 11). This file parses and
// checks their flags, so mistakes fail before anything connects, then runs the agent with one
// tunnel of that kind (run-kind.ts).

export type TunnelKind = 'tcp' | 'udp' | 'tls';

export interface KindTunnelSpec {
  kind: TunnelKind;
  target: { host: string; port: number };
  name?: string;
  domain?: string;
  allow: string[];
  public: boolean;
  allowIp: string[];
  /** Send a PROXY v2 header to the target first (tcp, tls). */
  proxyProtocol: boolean;
  /** tls only: raw (the target terminates TLS; default) or tcp (TLS ends before the target). */
  backend?: 'raw' | 'tcp';
  /** tls --backend tcp only: where TLS ends, when given on the command line (else the domain's default, then relay). */
  terminateAt?: 'agent' | 'relay';
  /** tls --backend tcp --terminate-at agent: the only ALPN protocols the agent negotiates (--alpn). */
  alpn?: string[];
}

/** The flags of TLS that ends at the agent (src/cli/agent-tls-flags.ts), as commander names them. */
const AGENT_TLS_FLAGS: [key: string, flag: string][] = [
  ['terminateAt', '--terminate-at'],
  ['acmeDirectory', '--acme-directory'],
  ['acmeEmail', '--acme-email'],
  ['acmeCa', '--acme-ca'],
  ['tlsCert', '--tls-cert'],
  ['tlsKey', '--tls-key'],
  ['clientCa', '--client-ca'],
  ['keepKey', '--keep-key'],
  ['alpn', '--alpn'],
];

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** `5432`, `db:5432`, `[::1]:5432`: where the agent connects. URLs are HTTP tunnels' business. */
export function parseKindTarget(kind: TunnelKind, spec: string): { host: string; port: number } {
  const s = spec.trim();
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^:[\]/]+):)?(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) {
    const hint = /^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? ` (a ${kind} tunnel carries bytes, not URLs: drop the scheme)` : '';
    throw new TunnError('INVALID_INPUT', `"${spec}" is not a ${kind} target: use a port (5432) or host:port (db.internal:5432, [::1]:5432), port 1-65535${hint}`);
  }
  return { host: (m[1] ?? 'localhost').replace(/^\[|\]$/g, ''), port };
}

export function parseKindTunnel(kind: TunnelKind, targetSpec: string, o: Record<string, unknown>): KindTunnelSpec {
  const target = parseKindTarget(kind, targetSpec);
  const allow = (o.allow as string[] | undefined) ?? [];
  const allowIp = (o.allowIp as string[] | undefined) ?? [];
  if (o.public && allow.length) throw new TunnError('INVALID_INPUT', '--public and -a do not go together: a public tunnel is open to everyone');
  if (o.proxyProtocol && kind === 'udp') throw new TunnError('INVALID_INPUT', '--proxy-protocol is for tcp and tls tunnels: a PROXY header goes before a connection\'s bytes, and UDP has no connection');
  let backend: KindTunnelSpec['backend'];
  if (kind === 'tls') {
    const b = (o.backend as string | undefined) ?? 'raw';
    if (b !== 'raw' && b !== 'tcp') throw new TunnError('INVALID_INPUT', `--backend "${b}": use raw (TLS ends at your target, the default) or tcp (TLS ends at the relay, your target receives plain TCP)`);
    backend = b;
    if (b === 'raw') {
      // commander sets fallback: true unless --no-fallback is given.
      const given = [...AGENT_TLS_FLAGS.filter(([k]) => o[k] !== undefined).map(([, f]) => f), ...(o.fallback === false ? ['--no-fallback'] : [])];
      if (given.length) throw new TunnError('INVALID_INPUT', `${given.join(', ')}: with --backend raw (the default) TLS ends at your target, with its own certificate, so there is nothing for the agent or the relay to terminate. Add --backend tcp to end TLS at the agent (--terminate-at agent) and send your target plain TCP`);
    }
  }
  const terminateAt = o.terminateAt as string | undefined;
  if (terminateAt !== undefined && terminateAt !== 'agent' && terminateAt !== 'relay') throw new TunnError('INVALID_INPUT', `--terminate-at "${terminateAt}": use agent (TLS ends at this agent, with its own certificate) or relay (the default)`);
  const alpn = (o.alpn as string[] | undefined) ?? [];
  for (const p of alpn) {
    if (!/^[\x21-\x7e]{1,255}$/.test(p)) throw new TunnError('INVALID_INPUT', `--alpn "${p}": an ALPN protocol id is 1-255 printable characters without spaces, e.g. --alpn postgresql`);
    if (p === 'acme-tls/1') throw new TunnError('INVALID_INPUT', '--alpn acme-tls/1: that id is reserved for certificate validations (TLS-ALPN-01), which the relay routes itself');
  }
  return { kind, target, name: o.name as string | undefined, domain: o.domain as string | undefined, allow, public: Boolean(o.public), allowIp, proxyProtocol: Boolean(o.proxyProtocol), backend, ...(terminateAt ? { terminateAt } : {}), ...(alpn.length ? { alpn } : {}) };
}

/**
 * The `--json` ready event: `url` (tcp://relay:port or udp://relay:port for a public port;
 * tcp://host or udp://host for a private tunnel, reached with `tunn connect`; https://host for
 * tls), `host` (the tunnel's name under its domain) and `port` where one was assigned.
 */
export function kindReadyEvent(kind: TunnelKind, r: { host: string; relayHost: string; port?: number }): { event: 'ready'; url: string; host: string; port?: number } {
  if (kind === 'tls') return { event: 'ready', url: `https://${r.host}`, host: r.host };
  if (r.port !== undefined) return { event: 'ready', url: `${kind}://${r.relayHost}:${r.port}`, host: r.host, port: r.port };
  return { event: 'ready', url: `${kind}://${r.host}`, host: r.host };
}

function kindCommand(program: Command, kind: TunnelKind, what: string): Command {
  const cmd = program
    .command(kind)
    .description(what)
    .argument('<target>', 'local service: a port (5432) or host:port')
    .option('-n, --name <name>', 'tunnel name: the first label of its hostname')
    .option('-d, --domain <domain>', 'custom domain to serve under')
    .addOption(new Option('-a, --allow <who>', 'who may connect (through `tunn connect`): email, @domain, group:name or idp:name (repeatable)').argParser(collect))
    .option('--public', kind === 'tls' ? 'route this name by SNI for everyone' : `a public ${kind.toUpperCase()} port on the relay, open to everyone`)
    .addOption(new Option('--allow-ip <cidr>', 'only these client addresses, IPv4 or IPv6 CIDR (repeatable)').argParser(collect))
    .option('--relay <url>', 'relay URL, e.g. https://tunn.example.com (env TUNN_RELAY)')
    .option('--relay-ca <file>', 'extra CA certificate to trust for the relay (env TUNN_RELAY_CA)');
  secretOption(cmd, 'token', 'token', 'the agent token');
  if (kind !== 'udp') cmd.option('--proxy-protocol', 'send the target a PROXY protocol v2 header first: client address and, through tunn connect, the verified email (TLV 0xE0) and a relay-signed assertion (TLV 0xE1)');
  else cmd.addOption(new Option('--proxy-protocol').hideHelp());
  if (kind === 'tls') {
    cmd
      .option('--backend <mode>', 'raw: TLS ends at your target (default); tcp: TLS ends before your target (at the relay, or at this agent with --terminate-at agent) and your target receives plain TCP')
      .option('--terminate-at <where>', 'with --backend tcp: where TLS ends: relay (default) or agent (the agent gets its own certificate; the relay only routes the encrypted bytes by SNI)')
      .option('--no-fallback', 'with --terminate-at agent: clients fail the handshake until the agent\'s certificate is ready, instead of the relay terminating')
      .option('--acme-directory <url>', 'with --terminate-at agent: the agent\'s ACME CA (default: the one the relay advertises)')
      .option('--acme-email <email>', 'with --terminate-at agent: contact email for the agent\'s ACME account')
      .option('--acme-ca <file>', 'with --terminate-at agent: extra CA (PEM) to trust for the ACME server\'s HTTPS')
      .option('--tls-cert <file>', 'with --terminate-at agent: serve this certificate chain (PEM) instead of getting one by ACME')
      .option('--tls-key <file>', 'the private key (PEM) of --tls-cert')
      .option('--client-ca <file>', 'with --terminate-at agent: require client certificates issued by this CA (mTLS; e.g. database clients with client certificates); implies --no-fallback')
      .option('--keep-key', 'with --terminate-at agent: keep the key across renewals, so a pin of it survives')
      .addOption(new Option('--alpn <protocol>', 'with --terminate-at agent: negotiate only this ALPN protocol (repeatable; e.g. postgresql for direct TLS); clients offering only others fail the handshake. Default: none selected').argParser(collect));
  }
  return cmd.option('--json', 'print JSON lines on stdout').option('-q, --quiet', 'do not print each connection');
}

export function registerKindCommands(program: Command): void {
  const specs: [TunnelKind, string][] = [
    ['tcp', 'expose a TCP service (a database, SSH, MQTT…): private through `tunn connect`, or a public port with --public'],
    ['udp', 'expose a UDP service (DNS, WireGuard, a game server…): private through `tunn connect --udp`, or a public port with --public'],
    ['tls', 'expose a TLS service routed by SNI: your target terminates (--backend raw, the default; the relay never decrypts), or your target speaks plain TCP and TLS ends at the relay (--backend tcp) or at this agent (--backend tcp --terminate-at agent)'],
  ];
  for (const [kind, what] of specs) {
    kindCommand(program, kind, what).action(async (target: string, o: Record<string, unknown>) => {
      const spec = parseKindTunnel(kind, target, o);
      // Checked like `tunn <port>`'s, so a typo in -a or --allow-ip is reported now.
      const [{ parseAllowList }, { parseIpAllowList }] = await Promise.all([import('../auth/policy.ts'), import('../auth/ip-allow.ts')]);
      parseAllowList(spec.allow);
      if (spec.allowIp.length) parseIpAllowList(spec.allowIp);
      const { runKindTunnel } = await import('./run-kind.ts');
      await runKindTunnel(spec, o);
    });
  }
}
