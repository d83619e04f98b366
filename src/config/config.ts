import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { TunnError } from '../lib/errors.ts';
import { parsePortRange } from '../lib/port-range.ts';
import { clusterCrossChecks, clusterSettings } from './cluster.ts';
import { envName, fileKey, flagName, isSecretKey, redactSecrets, resolveSecretFiles, type LayerSource } from './secrets.ts';

// One place that turns defaults, a config file, the environment (TUNN_*) and flags into a
// validated config, in that order of precedence, reporting every error at once. Secret
// settings (src/config/secrets.ts) also come from files in every layer: --token-file,
// TUNN_TOKEN_FILE, "tokenFile" in the config file.

/**
 * A number from a flag or the environment ("100") or a config file (100 or "100"). Not
 * z.coerce: that would read true as 1 and "" as 0.
 */
const numeric = (error: string) => z.preprocess((v) => (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v.trim())) ? Number(v.trim()) : v), z.number({ error }));
const port = numeric('must be a port number, 0-65535').pipe(z.number().int('must be a port number, 0-65535').min(0, 'must be 0-65535').max(65535, 'must be 0-65535'));
// Node's timers hold at most 2^31-1 ms (~24.8 days); a longer one fires at once, which would cut every connection.
const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
const seconds = numeric('must be a number of seconds').pipe(
  z.number().positive('must be a positive number of seconds').max(MAX_TIMER_SECONDS, `must be at most ${MAX_TIMER_SECONDS} seconds (24 days)`),
);
/** A number of seconds for one flag read outside a config (`tunn connect --udp-flow-idle`): the config's rule and words. */
export function parseSeconds(raw: string, flag: string): number {
  const r = seconds.safeParse(raw);
  if (!r.success) throw new TunnError('INVALID_INPUT', `${flag} "${raw}": ${r.error.issues[0]?.message ?? 'must be a number of seconds'}`);
  return r.data;
}
const wholeNumber = (min: number, max: number, what: string) => numeric(`must be a whole number ${what}, ${min}-${max}`).pipe(z.number().int(`must be a whole number ${what}, ${min}-${max}`).min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));
const bool = z.union([z.boolean(), z.enum(['1', 'true', 'yes', 'on', '0', 'false', 'no', 'off']).transform((v) => ['1', 'true', 'yes', 'on'].includes(v))], { error: 'must be true or false' });
/** A list: an array in a config file, or one comma-separated string (flags and the environment give arrays already). */
const list = <T extends z.ZodType>(item: T) => z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v), z.array(item, { error: 'must be a list, e.g. ["a", "b"], or one comma-separated string' }));
const domain = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, 'must be a DNS name such as tunn.example.com');

/** "LOW-HIGH" (lib/port-range.ts), kept as text: the relay parses it again where it hands ports out. */
const portRange = z.string().superRefine((v, ctx) => {
  const r = parsePortRange(v);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.message });
});

/** smtp(s)://[user:pass@]host[:port], parseable (nodemailer would otherwise fail at start with a bare "Invalid URL"). */
function isSmtpUrl(v: string): boolean {
  try {
    const u = new URL(v);
    return (u.protocol === 'smtp:' || u.protocol === 'smtps:') && /^([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?|\[[0-9A-Fa-f:.]+\])$/.test(u.hostname);
  } catch {
    return false;
  }
}

export const relaySchema = z.object({
  domain,
  httpsPort: port,
  httpPort: port,
  listen: z.string().min(1),
  dataDir: z.string().min(1),
  dev: bool,
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  store: z.string().optional(),
  secretKey: z.string().optional(),
  idleTimeout: seconds,
  headTimeout: seconds,
  maxHeadSize: wholeNumber(1024, 1024 * 1024, 'of bytes'),
  metricsToken: z.string().min(16, 'must be at least 16 characters').optional(),
  oidcIssuer: z.string().url('must be the issuer URL, e.g. https://accounts.example.com').optional(),
  oidcClientId: z.string().min(1).optional(),
  oidcClientSecret: z.string().min(1).optional(),
  oidcName: z.string().min(1).optional(),
  /** Claim (or dotted path, e.g. realm_access.roles) with the user's groups, for -a idp:<name>. */
  oidcGroupsClaim: z.string().trim().regex(/^[^.\s]+(\.[^.\s]+)*$/, 'must be a claim name or a dotted path such as realm_access.roles').optional(),
  /** Scopes asked of --oidc-issuer (space- or comma-separated); default openid email profile. */
  oidcScopes: z.string().trim().min(1).optional(),
  /** How long IdP group membership is trusted before it is asked again (seconds; default 300). */
  idpRefresh: numeric('must be a whole number of seconds').pipe(z.number().int('must be a whole number of seconds').min(1, 'must be at least 1 second').max(86400, 'must be at most 86400 seconds (a day)')).optional(),
  // LDAP as a group source (src/auth/ldap.ts).
  ldapUrl: z.string().regex(/^ldaps?:\/\/\S+$/, 'must be an ldap:// or ldaps:// URL, e.g. ldaps://ldap.example.com').optional(),
  ldapBindDn: z.string().min(1).optional(),
  ldapBindPassword: z.string().min(1).optional(),
  ldapBindPasswordFile: z.string().min(1).optional(),
  ldapUserBase: z.string().min(1).optional(),
  ldapGroupBase: z.string().min(1).optional(),
  /** Attribute holding the user's email (default mail). */
  ldapEmailAttribute: z.string().regex(/^[A-Za-z][A-Za-z0-9-]*$/, 'must be an attribute name such as mail').optional(),
  /** Extra CA (PEM) to trust for ldaps:// or StartTLS. */
  ldapCa: z.string().min(1).optional(),
  /** Upgrade an ldap:// connection with StartTLS. */
  ldapStarttls: bool.optional(),
  githubClientId: z.string().min(1).optional(),
  githubClientSecret: z.string().min(1).optional(),
  googleClientId: z.string().min(1).optional(),
  googleClientSecret: z.string().min(1).optional(),
  smtpUrl: z.string().refine(isSmtpUrl, 'must be an smtp:// or smtps:// URL with a host, e.g. smtp://user:pass@mail.example.com:587').optional(),
  mailFrom: z.string().min(3).optional(),
  adminEmail: list(z.string().email('must be an email address')).optional(),
  // Custom domains and certificates (src/domains/setup.ts).
  acmeDirectory: z.string().regex(/^(https?:\/\/\S+|letsencrypt|letsencrypt-staging)$/, 'must be an ACME directory URL, letsencrypt or letsencrypt-staging').optional(),
  acmeEmail: z.string().email('must be an email address').optional(),
  acmeCa: z.string().min(1).optional(),
  dnsPort: port.optional(),
  publicIp: z.string().regex(/^[0-9a-fA-F:.]+(,[0-9a-fA-F:.]+)*$/, 'must be IP address(es), comma-separated').optional(),
  dnsResolver: z.string().regex(/^(\[[0-9a-fA-F:]+\]|\d{1,3}(\.\d{1,3}){3})(:\d{1,5})?$/, 'must be the IP address of a DNS resolver with an optional port, e.g. 127.0.0.1:53').optional(),
  strictDomainVerify: bool,
  relayCerts: z.enum(['wildcard', 'per-host']).optional(),
  /** ACME challenge types the relay may answer, in priority order (comma-separated). */
  acmeChallenge: z.string().trim().toLowerCase().regex(/^(dns-01|http-01|tls-alpn-01)(\s*,\s*(dns-01|http-01|tls-alpn-01))*$/, 'must be dns-01, http-01 and/or tls-alpn-01, comma-separated in priority order').optional(),
  certEventToken: z.string().min(16, 'must be at least 16 characters').optional(),
  // Public TCP/UDP ports of tcp/udp tunnels (issue 11; src/relay/public-ports.ts). None by default.
  tcpPorts: portRange.optional(),
  udpPorts: portRange.optional(),
  /** Public ports one account may hold, TCP and UDP together (default 5). */
  portQuota: wholeNumber(0, 65535, 'of ports').optional(),
  /** Open connections on one public TCP port (its tunnel) at once (default 1000). */
  portConnections: wholeNumber(1, 1_000_000, 'of connections').optional(),
  /** Open connections from one client IP on one public TCP port (default 100). */
  portConnectionsPerIp: wholeNumber(1, 1_000_000, 'of connections').optional(),
  /** UDP flows on one public UDP port (its tunnel) at once (default 1000). */
  udpFlows: wholeNumber(1, 1_000_000, 'of flows').optional(),
  /** UDP flows across the relay at once (default 10000). */
  udpFlowsTotal: wholeNumber(1, 10_000_000, 'of flows').optional(),
  /** A UDP flow silent both ways this long ends (default 60). */
  udpFlowIdle: seconds.optional(),
  /** A raw TCP connection (tcp/tls tunnels, tunn connect) silent both ways this long is closed (default 3600). */
  tcpIdle: seconds.optional(),
  alertWebhook: z.string().url('must be a URL').optional(),
  // DNS-01 through the operator's DNS instead of the relay's own server (src/dns/providers/).
  dnsProvider: z.enum(['rfc2136', 'cloudflare'], { error: 'must be rfc2136 or cloudflare' }).optional(),
  rfc2136Server: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/, 'must be the primary DNS server as host:port, e.g. 10.0.0.53:53').optional(),
  /** A TSIG key: BIND's `key "name" { … };` block (tsig-keygen) or `name:base64`. */
  rfc2136Key: z.string().min(1).optional(),
  cloudflareToken: z.string().min(1).optional(),
  /** Tests only: where the Cloudflare API is (default https://api.cloudflare.com/client/v4). */
  cloudflareApiUrl: z.string().url('must be a URL').optional(),
  // A relay cluster (src/config/cluster.ts).
  ...clusterSettings,
  json: bool,
});
export type RelayOptions = z.infer<typeof relaySchema>;

// Settings that need a partner. Checked on the merged input, so they are reported together
// with every other error.
const RELAY_PAIRS: [string, string, string][] = [
    ['oidcClientId', 'oidcIssuer', '--oidc-client-id needs --oidc-issuer'],
    ['oidcClientSecret', 'oidcIssuer', '--oidc-client-secret needs --oidc-issuer'],
    ['oidcIssuer', 'oidcClientId', '--oidc-issuer needs --oidc-client-id'],
    ['oidcIssuer', 'oidcClientSecret', '--oidc-issuer needs --oidc-client-secret'],
    ['githubClientId', 'githubClientSecret', '--github-client-id needs --github-client-secret'],
    ['githubClientSecret', 'githubClientId', '--github-client-secret needs --github-client-id'],
    ['googleClientId', 'googleClientSecret', '--google-client-id needs --google-client-secret'],
    ['googleClientSecret', 'googleClientId', '--google-client-secret needs --google-client-id'],
    ['smtpUrl', 'mailFrom', '--smtp-url needs --mail-from (the From address of sign-in links)'],
    ['mailFrom', 'smtpUrl', '--mail-from needs --smtp-url'],
    ['oidcGroupsClaim', 'oidcIssuer', '--oidc-groups-claim needs --oidc-issuer'],
    ['oidcScopes', 'oidcIssuer', '--oidc-scopes needs --oidc-issuer'],
    ['ldapUrl', 'ldapUserBase', '--ldap-url needs --ldap-user-base (where users are looked up by email)'],
    ['ldapBindDn', 'ldapUrl', '--ldap-bind-dn needs --ldap-url'],
    ['ldapUserBase', 'ldapUrl', '--ldap-user-base needs --ldap-url'],
    ['ldapGroupBase', 'ldapUrl', '--ldap-group-base needs --ldap-url'],
    ['ldapCa', 'ldapUrl', '--ldap-ca needs --ldap-url'],
    ['tlsCert', 'tlsKey', '--tls-cert needs --tls-key (the private key of the certificate)'],
    ['tlsKey', 'tlsCert', '--tls-key needs --tls-cert'],
    ['rfc2136Server', 'dnsProvider', '--rfc2136-server needs --dns-provider rfc2136'],
    ['rfc2136Key', 'dnsProvider', '--rfc2136-key-file needs --dns-provider rfc2136'],
    ['cloudflareToken', 'dnsProvider', '--cloudflare-token-file needs --dns-provider cloudflare'],
    ['cloudflareApiUrl', 'dnsProvider', '--cloudflare-api-url needs --dns-provider cloudflare'],
  ];

/** What each --dns-provider needs, and how to give it. */
const DNS_PROVIDER_NEEDS: Record<string, [string, string][]> = {
  rfc2136: [
    ['rfc2136Server', '--dns-provider rfc2136 needs --rfc2136-server HOST:PORT (the primary server that accepts dynamic updates)'],
    ['rfc2136Key', '--dns-provider rfc2136 needs its TSIG key: --rfc2136-key-file FILE (as `tsig-keygen NAME` prints it), or TUNN_RFC2136_KEY=name:base64'],
  ],
  cloudflare: [['cloudflareToken', '--dns-provider cloudflare needs an API token with Zone:DNS:Edit: --cloudflare-token-file FILE, or TUNN_CLOUDFLARE_TOKEN']],
};

/**
 * Settings that name a file the relay reads at start: a missing one is reported with the rest.
 * (--acme-ca is read after the listeners open, and says so then: test/e2e/agent.test.ts relies
 * on that path to prove a failed start still exits.)
 */
const RELAY_FILES = ['tlsCert', 'tlsKey', 'ldapCa'] as const;

export function relayCrossChecks(merged: Record<string, unknown>): string[] {
  const problems = RELAY_PAIRS.filter(([a, b]) => merged[a] !== undefined && merged[b] === undefined).map(([, , message]) => message);
  for (const k of RELAY_FILES) {
    const v = merged[k];
    if (typeof v === 'string' && v !== '' && !existsSync(v)) problems.push(`cannot read ${flagName(k)} ${v}: no such file`);
  }
  const needs = DNS_PROVIDER_NEEDS[String(merged.dnsProvider)] ?? [];
  for (const [k, message] of needs) if (merged[k] === undefined) problems.push(message);
  const other = merged.dnsProvider === 'rfc2136' ? ['cloudflareToken', 'cloudflareApiUrl'] : merged.dnsProvider === 'cloudflare' ? ['rfc2136Server', 'rfc2136Key'] : [];
  for (const k of other) if (merged[k] !== undefined) problems.push(`${flagName(isSecretKey(k) ? fileKey(k) : k)} does not go with --dns-provider ${String(merged.dnsProvider)}`);
  const starttls = merged.ldapStarttls === true || ['1', 'true', 'yes', 'on'].includes(String(merged.ldapStarttls));
  // The bind password and every lookup would cross the network in the clear.
  if (typeof merged.ldapUrl === 'string' && /^ldap:\/\//i.test(merged.ldapUrl) && !starttls) problems.push('--ldap-url ldap:// sends the bind password in the clear: use ldaps://, or add --ldap-starttls');
  if (merged.ldapBindDn !== undefined && merged.ldapBindPassword === undefined && merged.ldapBindPasswordFile === undefined) problems.push('--ldap-bind-dn needs its password: --ldap-bind-password-file <file> (or TUNN_LDAP_BIND_PASSWORD)');
  problems.push(...clusterCrossChecks(merged));
  return problems;
}

export const agentSchema = z.object({
  /** One relay URL, or a comma list of a cluster's relays (the agent keeps sessions on two of them). */
  relay: z.string().refine((v) => v.split(',').every((p) => URL.canParse(p.trim())), 'must be a URL such as https://tunn.example.com'),
  token: z.string().min(1),
  relayCa: z.string().optional(),
  name: z.string().optional(),
  domain: z.string().optional(),
  allow: list(z.string()),
  public: bool,
  hostHeader: z.string().optional(),
  // Checked here, so a malformed value is reported with every other problem (and redacted).
  basicAuth: z.string().regex(/^[^:]+:[^]+$/, 'must be user:password with both parts non-empty, e.g. admin:s3cret').optional(),
  allowIp: list(z.string()),
  rateLimit: wholeNumber(1, 1_000_000, 'of requests per minute').optional(),
  rateLimitTunnel: wholeNumber(1, 1_000_000, 'of requests per minute').optional(),
  allowUpgrade: list(z.string()),
  /** `--for 2h`: the -a entries of this command end that long after the tunnel first registers. */
  for: z.string().optional(),
  sessions: wholeNumber(1, 16, 'of connections'),
  quiet: bool,
  json: bool,
  insecureTarget: bool,
  /** The inspector: an address (127.0.0.1:4040), or false for --no-inspect; on by default. */
  inspect: z.union([z.boolean(), z.string()]).optional(),
  inspectSecrets: bool,
  // TLS that ends at the agent (issue 12; checked in src/cli/agent-tls-flags.ts).
  terminateAt: z.enum(['agent', 'relay'], { error: 'must be agent or relay' }).optional(),
  /** --no-fallback: false. Visitors fail the handshake rather than be served by relay termination. */
  fallback: bool.optional(),
  acmeDirectory: z.string().regex(/^(https?:\/\/\S+|letsencrypt|letsencrypt-staging)$/, 'must be an ACME directory URL, letsencrypt or letsencrypt-staging').optional(),
  acmeEmail: z.string().email('must be an email address').optional(),
  acmeCa: z.string().min(1).optional(),
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  clientCa: z.string().min(1).optional(),
  keepKey: bool.optional(),
});
export type AgentOptions = z.infer<typeof agentSchema>;

export const relayDefaults = (dev: boolean): Partial<RelayOptions> => ({
  domain: dev ? 'tunn.localhost' : undefined,
  httpsPort: dev ? 8443 : 443,
  httpPort: dev ? 8080 : 80,
  listen: dev ? '127.0.0.1' : '0.0.0.0',
  dataDir: dev ? './.tunn/relay' : './tunn-data',
  dev,
  idleTimeout: 3600,
  headTimeout: 30,
  maxHeadSize: 64 * 1024,
  strictDomainVerify: false,
  json: false,
});

export const agentDefaults: Partial<AgentOptions> = {
  allow: [],
  allowIp: [],
  allowUpgrade: [],
  public: false,
  sessions: 2,
  quiet: false,
  json: false,
  insecureTarget: false,
  inspectSecrets: false,
};

/** Where each layer came from (layers made by fromEnv and fromFile; any other is flags). */
const layerSources = new WeakMap<object, LayerSource>();

/** Reads TUNN_<UPPER_SNAKE> for each key of the schema, and TUNN_<UPPER_SNAKE>_FILE for secrets. */
export function fromEnv(keys: readonly string[], env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const v = env[envName(k)];
    if (v !== undefined && v !== '') out[k] = ['allow', 'allowIp', 'allowUpgrade', 'adminEmail'].includes(k) ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
    const file = isSecretKey(k) ? env[envName(fileKey(k))] : undefined;
    if (file !== undefined && file !== '') out[fileKey(k)] = file;
  }
  layerSources.set(out, { kind: 'env' });
  return out;
}

export function fromFile(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TunnError('CONFIG_INVALID', `cannot read the config file ${path}: ${(err as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('the top level must be an object');
    layerSources.set(v, { kind: 'file', path });
    return v as Record<string, unknown>;
  } catch (err) {
    // V8 quotes the text around a syntax error; that text may be a secret, so it is cut.
    const why = (err as Error).message.replace(/, (\.\.\.)?".*"(\.\.\.)? is not valid JSON$/s, ' (the text around it is not shown: the file may hold secrets)');
    throw new TunnError('CONFIG_INVALID', `the config file ${path} is not valid JSON: ${why}`);
  }
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** What to tell a user who left out a required setting. */
export const missingHints: Record<string, string> = {
  token: 'is required: pass --token-file FILE or set TUNN_TOKEN (create one with `tunn relay token create`), or sign in with `tunn login`',
  relay: 'is required: pass --relay https://<relay domain> or set TUNN_RELAY',
  domain: 'is required: pass --domain (the DNS name the relay serves), or --dev for tunn.localhost',
};

/** The secrets of one layer with their files read (for commands outside resolveConfig); throws CONFIG_INVALID naming every problem. */
export function resolveSecretLayer(layer: Record<string, unknown>): Record<string, unknown> {
  const r = resolveSecretFiles(dropUndefined(layer), layerSources.get(layer) ?? { kind: 'flags' });
  if (r.problems.length) throw configInvalid(r.problems, { ...layer, ...r.layer });
  return r.layer;
}

/** Merges the layers and validates; throws CONFIG_INVALID listing every problem. */
export function resolveConfig<S extends z.ZodObject | z.ZodPipe<z.ZodObject, z.ZodType>>(schema: S, layers: Record<string, unknown>[], crossChecks?: (merged: Record<string, unknown>) => string[]): z.infer<S> {
  const secretProblems: string[] = [];
  const failedSecrets = new Set<string>();
  const resolved = layers.map((l) => {
    const r = resolveSecretFiles(dropUndefined(l), layerSources.get(l) ?? { kind: 'flags' });
    secretProblems.push(...r.problems);
    for (const k of r.failed) failedSecrets.add(k);
    return r.layer;
  });
  const merged = Object.assign({}, ...resolved);
  const shape = 'shape' in schema ? schema.shape : (schema as z.ZodPipe<z.ZodObject, z.ZodType>).in.shape;
  const known = new Set(Object.keys(shape));
  const unknown = Object.keys(merged).filter((k) => !known.has(k));
  const r = schema.safeParse(merged, { error: inTunnWords });
  const problems: string[] = [...secretProblems, ...unknown.map((k) => `unknown setting "${k}"`)];
  if (crossChecks) problems.push(...crossChecks(merged));
  if (!r.success) {
    for (const issue of r.error.issues) {
      const key = String(issue.path[0] ?? '');
      // A secret whose file could not be used is reported once, by what is wrong with the file.
      if (failedSecrets.has(key)) continue;
      const msg = merged[key] === undefined || merged[key] === '' ? (missingHints[key] ?? 'is required') : issue.message;
      problems.push(`${flagName(key)}: ${msg}`);
    }
  }
  if (problems.length) throw configInvalid(problems, merged);
  return r.data as z.infer<S>;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'must be text (in a config file: a string in quotes)',
  number: 'must be a number',
  boolean: 'must be true or false',
  array: 'must be a list, e.g. ["a", "b"]',
  object: 'must be an object',
};

/** zod's own messages ("Invalid input: expected string, received number") in tunn's words; settings with their own message keep it. */
export function inTunnWords(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return TYPE_WORDS[issue.expected] ?? `must be ${issue.expected}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small':
      return issue.origin === 'string' ? (Number(issue.minimum) <= 1 ? 'must not be empty' : `must be at least ${issue.minimum} characters`) : `must be at least ${issue.minimum}`;
    case 'too_big':
      return issue.origin === 'string' ? `must be at most ${issue.maximum} characters` : `must be at most ${issue.maximum}`;
    case 'invalid_format':
      return issue.format === 'url' ? 'must be a URL' : issue.format === 'email' ? 'must be an email address' : `must be ${issue.format === 'regex' ? 'in the documented format' : `a valid ${issue.format}`}`;
    default:
      return undefined;
  }
}

/** The one CONFIG_INVALID error listing every problem, with the secrets among `settings` redacted. */
function configInvalid(problems: string[], settings: Record<string, unknown>): TunnError {
  return new TunnError('CONFIG_INVALID', redactSecrets(`invalid configuration:\n  - ${problems.join('\n  - ')}`, settings));
}
