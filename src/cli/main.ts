import './v8-setup.ts';
import { Command, Option } from 'commander';
import { errorMessage, TunnError } from '../lib/errors.ts';
import { registerAgentCertCommands } from './agent-cert-commands.ts';
import { registerCertEventCommand } from './cert-event-command.ts';
import { completionScript } from './completion.ts';
import { registerConfigCommands } from './config-commands.ts';
import { registerConnectCommand } from './connect.ts';
import { registerKindCommands } from './kind-commands.ts';
import { registerDomainCommands } from './domain-commands.ts';
import { RelayApi, resolveApiTarget } from './api-client.ts';
import { registerGrantCommands } from './grant-commands.ts';
import { registerIdentityCommands } from './identity-commands.ts';
import { registerTrustCommands } from './trust-commands.ts';
import { registerTunnelCommands } from './tunnel-commands.ts';
import { secretOption, warnSecretsOnCommandLine } from './secret-flags.ts';
import { looksLikeCommandWord, nearestCommand, tunnVersion, unknownCommandMessage, withoutHttpWord } from './suggest.ts';

// Entry point: parse flags, hand over to the run-* functions. No logic here.
// Each command loads its own modules when it runs, so an agent does not carry the relay's code
// (a smaller heap is cheaper to garbage-collect on the data path, and starts faster).
const tokenCommands = () => import('./run-token.ts');

const commandNames = (cmd: Command): string[] => cmd.commands.flatMap((c) => [c.name(), ...c.aliases()]);

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

function relayFlags(cmd: Command): Command {
  cmd
    .option('--domain <domain>', 'DNS name the relay serves (tunnels are <name>.<domain>)')
    .option('--https-port <port>', 'HTTPS port for visitors and agents (0 = any free port)')
    .option('--http-port <port>', 'plain HTTP port: redirects to HTTPS, or serves in --dev (0 = any free port)')
    .option('--listen <address>', 'address to listen on')
    .option('--data-dir <dir>', 'where the relay keeps its database, keys and dev CA')
    .option('--dev', 'local development: tunn.localhost, ports 8443/8080, a dev CA, plain HTTP served')
    .option('--tls-cert <file>', 'certificate chain (PEM) for the relay domain and its wildcard')
    .option('--tls-key <file>', 'private key (PEM) for --tls-cert')
    .option('--store <url>', 'database: a SQLite file path or postgres:// URL (default: tunn.db in the data dir); env TUNN_STORE')
    .option('--store-file <file>', 'read the --store value (a postgres:// URL with its password) from this file (one line; env TUNN_STORE_FILE)');
  secretOption(cmd, 'secretKey', 'key', 'the key that seals secrets at rest (default: secret.key in the data dir)', { fileOnly: true });
  cmd
    .option('--idle-timeout <seconds>', 'close public connections idle this long (default 3600)')
    .option('--head-timeout <seconds>', 'time a client has to send a request head (default 30)');
  secretOption(cmd, 'metricsToken', 'token', 'the bearer token that may read /metrics from non-loopback addresses');
  cmd
    .option('--oidc-issuer <url>', 'sign-in with any OpenID Connect issuer (discovery, PKCE)')
    .option('--oidc-client-id <id>', 'client id registered with --oidc-issuer');
  secretOption(cmd, 'oidcClientSecret', 'secret', 'the client secret for --oidc-client-id');
  cmd
    .option('--oidc-name <name>', 'label of the OIDC button on the login page')
    .option('--oidc-groups-claim <claim>', 'claim with the user\'s groups for -a idp:<name>, or a dotted path such as realm_access.roles')
    .option('--oidc-scopes <scopes>', 'scopes asked of --oidc-issuer (default "openid email profile"; add e.g. groups)')
    .option('--idp-refresh <seconds>', 'IdP group membership is confirmed again after this long (default 300)')
    .option('--ldap-url <url>', 'LDAP directory as a group source for -a idp:<name>: ldaps://host or ldap://host')
    .option('--ldap-bind-dn <dn>', 'DN the relay binds as to search the directory')
    .option('--ldap-user-base <dn>', 'where users are looked up by email, e.g. ou=people,dc=corp')
    .option('--ldap-group-base <dn>', 'where group entries (member/uniqueMember) are searched, e.g. ou=groups,dc=corp')
    .option('--ldap-email-attribute <name>', 'attribute with the user\'s email (default mail)')
    .option('--ldap-ca <file>', 'extra CA (PEM) to trust for the directory\'s TLS')
    .option('--ldap-starttls', 'upgrade an ldap:// connection with StartTLS');
  secretOption(cmd, 'ldapBindPassword', 'password', 'the password for --ldap-bind-dn', { fileOnly: true });
  cmd.option('--github-client-id <id>', 'sign-in with GitHub (OAuth app client id)');
  secretOption(cmd, 'githubClientSecret', 'secret', 'the GitHub OAuth app client secret');
  cmd.option('--google-client-id <id>', 'sign-in with Google (OAuth client id)');
  secretOption(cmd, 'googleClientSecret', 'secret', 'the Google OAuth client secret');
  secretOption(cmd, 'smtpUrl', 'url', 'the SMTP server that sends sign-in links, e.g. smtp://user:pass@mail:587');
  cmd
    .option('--mail-from <address>', 'From address of sign-in emails')
    .addOption(new Option('--admin-email <email>', 'an operator who may list every account\'s events (repeatable)').argParser(collect))
    .option('--acme-directory <url>', 'issue certificates from this ACME CA: a directory URL, letsencrypt or letsencrypt-staging')
    .option('--acme-email <email>', 'contact email for the ACME account')
    .option('--acme-ca <file>', 'extra CA (PEM) to trust for the ACME server\'s own HTTPS, e.g. Pebble\'s')
    .option('--dns-port <port>', 'answer DNS for the relay\'s zone on this port, UDP and TCP (default 53 with ACME; 0 = any free port)')
    .option('--public-ip <ips>', 'address(es) the relay\'s zone answers with, comma-separated (default 127.0.0.1 in --dev)')
    .option('--dns-resolver <host:port>', 'resolver that checks customers\' DNS records (default: the system\'s)')
    .option('--strict-domain-verify', 'custom domains also need a _tunn-verify.<domain> TXT token')
    .option('--relay-certs <mode>', 'the relay\'s own names: wildcard (DNS-01, default) or per-host (HTTP-01/TLS-ALPN-01)')
    .option('--acme-challenge <types>', 'ACME challenges the relay answers, in priority order: dns-01,http-01,tls-alpn-01 (default; dns-01 only with the relay\'s DNS server). Wildcards always use dns-01');
  cmd
    .option('--tcp-ports <LOW-HIGH>', 'public TCP ports for `tunn tcp --public`, e.g. 20000-20999 (none by default)')
    .option('--udp-ports <LOW-HIGH>', 'public UDP ports for `tunn udp --public`, e.g. 20000-20999 (none by default)')
    .option('--port-quota <n>', 'public ports one account may hold, TCP and UDP together (default 5)')
    .option('--port-connections <n>', 'open connections on one public TCP port at once (default 1000)')
    .option('--port-connections-per-ip <n>', 'open connections from one client IP on one public TCP port (default 100)')
    .option('--udp-flows <n>', 'UDP flows on one public UDP port at once (default 1000)')
    .option('--udp-flows-total <n>', 'UDP flows across the relay at once (default 10000)')
    .option('--udp-flow-idle <seconds>', 'end a UDP flow silent both ways this long (default 60)')
    .option('--tcp-idle <seconds>', 'close a tcp/tls tunnel connection silent both ways this long (default 3600)');
  secretOption(cmd, 'certEventToken', 'token', 'the key that signs POST /v1/domains/cert-events (enables it, for an external certificate manager)');
  secretOption(cmd, 'alertWebhook', 'url', 'the URL that receives certificate alerts (expiry, failures, drift) as JSON POSTs');
  cmd
    .option('--dns-provider <name>', 'write ACME DNS-01 records through your DNS: rfc2136 or cloudflare (the relay\'s DNS server is then off unless --dns-port)')
    .option('--rfc2136-server <host:port>', 'the primary DNS server that accepts dynamic updates (RFC 2136), e.g. 10.0.0.53:53');
  secretOption(cmd, 'rfc2136Key', 'name:base64', 'the TSIG key (hmac-sha256) for --rfc2136-server, as `tsig-keygen NAME` prints it or name:base64', { fileOnly: true, multiline: true });
  secretOption(cmd, 'cloudflareToken', 'token', 'the Cloudflare API token (Zone → DNS → Edit) for --dns-provider cloudflare', { fileOnly: true });
  cmd.addOption(new Option('--cloudflare-api-url <url>', 'tests only: where the Cloudflare API is').hideHelp());
  cmd.option('--node-url <url>', 'run as one relay of a cluster: the https://host:port at which the other relays reach this one (needs a postgres:// --store)');
  secretOption(cmd, 'clusterSecret', 'secret', 'the secret every relay of the cluster shares (the link between relays is verified with it; generate one with: openssl rand -hex 32)', { fileOnly: true });
  cmd
    .option('--cluster-ca <file>', 'instead of --cluster-secret-file: the CA (PEM) that issued every relay\'s link certificate')
    .option('--cluster-cert <file>', 'this relay\'s link certificate (PEM), from --cluster-ca')
    .option('--cluster-key <file>', 'the private key (PEM) of --cluster-cert');
  return cmd
    .option('--config <file>', 'JSON file with any of these settings')
    .option('--json', 'log JSON lines on stdout');
}

export function buildProgram(): Command {
  const program: Command = new Command('tunn')
    .description('Expose a local service at a real HTTPS hostname, reachable only by the people you name.')
    .version(tunnVersion())
    .argument('[target]', 'local service: a port (8080), host:port, or http(s)://host:port')
    .option('-n, --name <name>', 'tunnel name: the first label of its hostname (default: a random readable one)')
    .option('-d, --domain <domain>', 'custom domain to serve under')
    .addOption(new Option('-a, --allow <who>', 'who may visit: email, @domain, group:name or idp:name (repeatable)').argParser(collect))
    .option('--for <duration>', 'the -a entries end this long after the tunnel starts, e.g. 2h (the owner always stays)')
    .option('--public', 'open the tunnel to everyone (tunnels are private by default)')
    .option('--relay <url>', 'relay URL, e.g. https://tunn.example.com (env TUNN_RELAY)')
    .option('--relay-ca <file>', 'extra CA certificate to trust for the relay, e.g. its dev CA (env TUNN_RELAY_CA)')
    .addOption(new Option('--allow-ip <cidr>', 'only these client addresses, IPv4 or IPv6 CIDR (repeatable; checked first)').argParser(collect))
    .option('--rate-limit <n>', 'requests per minute per client IP (429 with Retry-After beyond)')
    .option('--rate-limit-tunnel <n>', 'requests per minute for the whole tunnel')
    .addOption(new Option('--allow-upgrade <protocol>', 'also forward Upgrade to this protocol (WebSocket always passes; never h2c; repeatable or comma-separated)').argParser(collect))
    .option('--host-header <value>', '"rewrite" to send the target\'s host:port as Host, or a literal Host value (default: keep the visitor\'s)')
    .option('--sessions <n>', 'parallel connections to the relay (default 2)')
    .option('--insecure-target', 'do not verify the certificate of an https:// target')
    .option('-q, --quiet', 'do not print the request log')
    .option('--inspect <address>', 'inspector page address, loopback only (default: 127.0.0.1, first free port from 4040)')
    .option('--no-inspect', 'do not run the inspector')
    .option('--inspect-secrets', 'show secrets (Authorization, cookies, tokens, password fields) in the inspector')
    .option('--no-color', 'no colours in the request log (also NO_COLOR=1; never coloured when not a terminal)')
    .addOption(new Option('--terminate-at <where>', 'where visitors\' TLS ends: relay (default) or agent (end-to-end; the agent gets its own certificate)').choices(['agent', 'relay']))
    .option('--no-fallback', 'with --terminate-at agent: visitors fail the handshake until the agent\'s certificate is ready, instead of the relay terminating')
    .option('--acme-directory <url>', 'with --terminate-at agent: the agent\'s ACME CA (default: the one the relay advertises)')
    .option('--acme-email <email>', 'with --terminate-at agent: contact email for the agent\'s ACME account')
    .option('--acme-ca <file>', 'with --terminate-at agent: extra CA (PEM) to trust for the ACME server\'s HTTPS')
    .option('--tls-cert <file>', 'with --terminate-at agent: serve this certificate chain (PEM) instead of getting one by ACME')
    .option('--tls-key <file>', 'the private key (PEM) of --tls-cert')
    .option('--client-ca <file>', 'with --terminate-at agent: require client certificates issued by this CA (mTLS); implies --no-fallback')
    .option('--keep-key', 'with --terminate-at agent: keep the key across renewals, so a pin of it survives')
    .option('--config <file>', 'JSON file with any of these settings')
    .option('--json', 'print JSON lines on stdout')
    .showHelpAfterError()
    .enablePositionalOptions()
    // Every command: a secret typed on the command line is readable by every local user.
    .hook('preAction', (_program, action) => warnSecretsOnCommandLine(action))
    .action(async (target: string | undefined, opts: Record<string, unknown>, cmd: Command) => {
      if (!target) {
        cmd.help();
        return;
      }
      // `tunn logn`: the root takes a target, so commander cannot tell a typo from one.
      if (target === 'http') throw new TunnError('INVALID_INPUT', '`tunn http` needs the local service: `tunn http 8080` (the same as `tunn 8080`)');
      if (looksLikeCommandWord(target)) {
        const near = nearestCommand(target, commandNames(cmd));
        throw new TunnError('INVALID_INPUT', near ? unknownCommandMessage('tunn', target, commandNames(cmd)) : `"${target}" is not a target (a port such as 8080, host:port or http://host:port) or a tunn command (\`tunn --help\` lists them)`);
      }
      await (await import('./run-agent.ts')).runAgent(target, opts);
    });
  secretOption(program, 'token', 'token', 'the agent token');
  secretOption(program, 'basicAuth', 'user:pass', 'an HTTP basic auth user:password that visitors must also give');

  const relay = relayFlags(program.command('relay').description('run a relay server'))
    // `tunn relay tokn list`: a command with both an action and subcommands sees a typo as arguments.
    .allowExcessArguments()
    .action(async (opts: Record<string, unknown>, cmd: Command) => {
      if (cmd.args.length) throw new TunnError('INVALID_INPUT', unknownCommandMessage('tunn relay', cmd.args[0]!, commandNames(cmd)));
      await (await import('./run-relay.ts')).runRelay(opts);
    });
  relayFlags(relay.command('dns').command('check').description('write, wait for and delete a test TXT record through --dns-provider (takes the relay\'s flags)'))
    .action(async (opts: Record<string, unknown>) => (await import('./dns-check.ts')).runDnsCheck(opts));
  const token = relay.command('token').description('manage agent tokens on this relay (works on the data dir)');
  // Operator commands work on the relay's data dir (or --store) directly, not through the API.
  const onDataDir = (cmd: Command): Command =>
    cmd
      .option('--data-dir <dir>', "the relay's data dir (default ./tunn-data; env TUNN_DATA_DIR)")
      .option('--dev', "the data dir `tunn dev` and `tunn relay --dev` use (./.tunn/relay)")
      .option('--store <url>', "database URL, if not the data dir's SQLite file (env TUNN_STORE)")
      .option('--store-file <file>', 'read the --store value from this file (env TUNN_STORE_FILE)')
      .option('--secret-key-file <file>', "read the relay's secret-box key from this file (env TUNN_SECRET_KEY, TUNN_SECRET_KEY_FILE)")
      .option('--json', 'print JSON');
  onDataDir(
    token
      .command('create')
      .description('create an agent token for an account (created if new)')
      .requiredOption('--email <email>', 'the account the token is for')
      .option('--name <label>', 'a label to recognise the token by'),
  ).action(async (opts) => (await tokenCommands()).runTokenCreate(opts));
  onDataDir(token.command('list').description('list agent and personal access tokens').option('--email <email>', "only this account's")).action(async (opts) => (await tokenCommands()).runTokenList(opts));
  const keys = relay.command('keys').description('token signing keys: rotate without signing anyone out');
  onDataDir(keys.command('list').description('list signing keys')).action(async (opts) => (await tokenCommands()).runKeysList(opts));
  onDataDir(keys.command('rotate').description('add a new signing key; older tokens stay valid')).action(async (opts) => (await tokenCommands()).runKeysRotate(opts));
  onDataDir(keys.command('retire').description('stop accepting tokens signed with a key').argument('<kid>', 'key id (from `tunn relay keys list`)')).action(async (kid: string, opts) => (await tokenCommands()).runKeysRetire(kid, opts));
  onDataDir(token.command('revoke').description('revoke a token by id').argument('<id>', 'token id (from `tunn relay token list`)')).action(async (id: string, opts) => (await tokenCommands()).runTokenRevoke(id, opts));
  relay
    .command('status')
    .description('the relays of a cluster (alive, since, agents, tunnels) and where each tunnel is served')
    .option('--store <url>', 'the database the relays share, e.g. postgres://… (env TUNN_STORE)')
    .option('--store-file <file>', 'read the --store value from this file (env TUNN_STORE_FILE)')
    .option('--data-dir <dir>', "a single relay's data dir, to read its SQLite file (default ./tunn-data; env TUNN_DATA_DIR)")
    .option('--dev', "the data dir `tunn dev` and `tunn relay --dev` use (./.tunn/relay)")
    .option('--json', 'print JSON')
    .action(async (opts) => (await import('./cluster-commands.ts')).runRelayStatus(opts));

  relayFlags(program.command('dev').description('run a relay and an agent in one process for a local try-out'))
    .argument('[target]', 'local service to expose (default: a built-in demo page)')
    .option('-n, --name <name>', 'tunnel name')
    .option('-q, --quiet', 'do not print the request log')
    .option('--inspect <address>', 'inspector page address, loopback only (default: 127.0.0.1, first free port from 4040)')
    .option('--no-inspect', 'do not run the inspector')
    .option('--inspect-secrets', 'show secrets in the inspector')
    .option('--no-color', 'no colours in the request log (also NO_COLOR=1)')
    .action(async (target: string | undefined, opts: Record<string, unknown>) => (await import('./run-dev.ts')).runDev(target, opts));

  registerKindCommands(program);
  registerConnectCommand(program);
  registerIdentityCommands(program);
  registerTunnelCommands(program);
  registerConfigCommands(program);
  registerTrustCommands(program);
  registerGrantCommands(program);
  registerDomainCommands(program, (o) => new RelayApi(resolveApiTarget(o as { relay?: string; token?: string; tokenFile?: string; relayCa?: string })));
  registerCertEventCommand(program.commands.find((c) => c.name() === 'cert')!);
  registerAgentCertCommands(program.commands.find((c) => c.name() === 'cert')!);

  program
    .command('version')
    .description('print tunn\'s version')
    .action(() => {
      process.stdout.write(`tunn ${tunnVersion()} (Node.js ${process.versions.node})\n`);
    });

  program
    .command('completion')
    .description('print a shell completion script')
    .argument('<shell>', 'bash, zsh or fish')
    .action((shell: string) => {
      process.stdout.write(completionScript(program, shell));
    });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(withoutHttpWord(argv), { from: 'user' });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') return;
    if (typeof code === 'string' && code.startsWith('commander.')) {
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`tunn: error: ${err instanceof TunnError ? err.message : errorMessage(err)}\n`);
    // Whatever a failed start left open (listeners, timers) must not keep the process alive.
    process.exit(1);
  }
}

if (import.meta.main) {
  void main(process.argv.slice(2));
}
