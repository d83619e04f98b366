import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { TunnError } from '../lib/errors.ts';

// One place that turns defaults, a config file, the environment (TUNN_*) and flags into a
// validated config, in that order of precedence, reporting every error at once.

const port = z.coerce.number({ error: 'must be a port number, 0-65535' }).int('must be a port number, 0-65535').min(0, 'must be 0-65535').max(65535, 'must be 0-65535');
const seconds = z.coerce.number().positive('must be a positive number of seconds');
const bool = z.union([z.boolean(), z.enum(['1', 'true', 'yes', 'on', '0', 'false', 'no', 'off']).transform((v) => ['1', 'true', 'yes', 'on'].includes(v))]);
const domain = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, 'must be a DNS name such as tunn.example.com');

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
  maxHeadSize: z.coerce.number().int().min(1024).max(1024 * 1024),
  metricsToken: z.string().min(16, 'must be at least 16 characters').optional(),
  oidcIssuer: z.string().url('must be the issuer URL, e.g. https://accounts.example.com').optional(),
  oidcClientId: z.string().min(1).optional(),
  oidcClientSecret: z.string().min(1).optional(),
  oidcName: z.string().min(1).optional(),
  githubClientId: z.string().min(1).optional(),
  githubClientSecret: z.string().min(1).optional(),
  googleClientId: z.string().min(1).optional(),
  googleClientSecret: z.string().min(1).optional(),
  smtpUrl: z.string().refine(isSmtpUrl, 'must be an smtp:// or smtps:// URL with a host, e.g. smtp://user:pass@mail.example.com:587').optional(),
  mailFrom: z.string().min(3).optional(),
  adminEmail: z.array(z.string().email('must be an email address')).optional(),
  // Custom domains and certificates (src/relay/custom-domains.ts).
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
  alertWebhook: z.string().url('must be a URL').optional(),
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
  ];

export function relayCrossChecks(merged: Record<string, unknown>): string[] {
  return RELAY_PAIRS.filter(([a, b]) => merged[a] !== undefined && merged[b] === undefined).map(([, , message]) => message);
}

export const agentSchema = z.object({
  relay: z.string().url('must be a URL such as https://tunn.example.com'),
  token: z.string().min(1),
  relayCa: z.string().optional(),
  name: z.string().optional(),
  domain: z.string().optional(),
  allow: z.array(z.string()),
  public: bool,
  hostHeader: z.string().optional(),
  basicAuth: z.string().optional(),
  allowIp: z.array(z.string()),
  rateLimit: z.string().optional(),
  rateLimitTunnel: z.string().optional(),
  sessions: z.coerce.number().int().min(1).max(16),
  quiet: bool,
  json: bool,
  insecureTarget: bool,
  /** The inspector: an address (127.0.0.1:4040), or false for --no-inspect; on by default. */
  inspect: z.union([z.boolean(), z.string()]).optional(),
  inspectSecrets: bool,
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
  public: false,
  sessions: 2,
  quiet: false,
  json: false,
  insecureTarget: false,
  inspectSecrets: false,
};

/** Reads TUNN_<UPPER_SNAKE> for each key of the schema. */
export function fromEnv(keys: readonly string[], env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const name = 'TUNN_' + k.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
    const v = env[name];
    if (v !== undefined && v !== '') out[k] = ['allow', 'allowIp', 'adminEmail'].includes(k) ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  }
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
    return v as Record<string, unknown>;
  } catch (err) {
    throw new TunnError('CONFIG_INVALID', `the config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

const flagName = (k: string): string => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/** What to tell a user who left out a required setting. */
export const missingHints: Record<string, string> = {
  token: 'is required: pass --token or set TUNN_TOKEN (create one with `tunn relay token create` or `tunn login`)',
  relay: 'is required: pass --relay https://<relay domain> or set TUNN_RELAY',
  domain: 'is required: pass --domain (the DNS name the relay serves), or --dev for tunn.localhost',
};

/** Merges the layers and validates; throws CONFIG_INVALID listing every problem. */
export function resolveConfig<S extends z.ZodObject | z.ZodPipe<z.ZodObject, z.ZodType>>(schema: S, layers: Record<string, unknown>[], crossChecks?: (merged: Record<string, unknown>) => string[]): z.infer<S> {
  const merged = Object.assign({}, ...layers.map(dropUndefined));
  const shape = 'shape' in schema ? schema.shape : (schema as z.ZodPipe<z.ZodObject, z.ZodType>).in.shape;
  const known = new Set(Object.keys(shape));
  const unknown = Object.keys(merged).filter((k) => !known.has(k));
  const r = schema.safeParse(merged);
  const problems: string[] = unknown.map((k) => `unknown setting "${k}"`);
  if (crossChecks) problems.push(...crossChecks(merged));
  if (!r.success) {
    for (const issue of r.error.issues) {
      const key = String(issue.path[0] ?? '');
      const msg = merged[key] === undefined || merged[key] === '' ? (missingHints[key] ?? 'is required') : issue.message;
      problems.push(`${flagName(key)}: ${msg}`);
    }
  }
  if (problems.length) throw new TunnError('CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
  return r.data as z.infer<S>;
}
