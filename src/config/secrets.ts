import { readFileSync } from 'node:fs';

// One policy for every secret setting. A secret given as a flag is visible to every local user
// in /proc/<pid>/cmdline and `ps`, so each one also comes from a file (`--<flag>-file FILE`,
// `TUNN_<FLAG>_FILE`, `"<key>File"` in a config file) or the environment (`TUNN_<FLAG>`), and
// the CLI warns when one is typed on the command line itself. A later secret flag is one more
// entry in SECRET_KEYS; nothing else changes.

export const SECRET_KEYS = [
  'token',
  'basicAuth',
  'metricsToken',
  'oidcClientSecret',
  'githubClientSecret',
  'googleClientSecret',
  'smtpUrl',
  'store',
  'certEventToken',
  'secretKey',
  // Webhook URLs (Slack, Teams, most chat and paging services) carry their credential in the path.
  'alertWebhook',
  'ldapBindPassword',
  // DNS-01 through the operator's DNS (src/dns/providers/).
  'rfc2136Key',
  'cloudflareToken',
  'clusterSecret',
] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];

/** Secrets whose file may span lines: a TSIG key in BIND's format is a `key "…" { … };` block. */
const MULTILINE_SECRETS: ReadonlySet<string> = new Set(['rfc2136Key']);

/** URLs that are secret only when they carry a password (`smtp://user:pass@…`, `postgres://user:pass@…`). */
const SECRET_IF_PASSWORD: ReadonlySet<string> = new Set(['smtpUrl', 'store']);

export const isSecretKey = (k: string): k is SecretKey => (SECRET_KEYS as readonly string[]).includes(k);
export const fileKey = (k: string): string => `${k}File`;
export const flagName = (k: string): string => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
export const envName = (k: string): string => 'TUNN_' + k.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();

/** Where a layer of settings came from, for error messages that name what the user typed. */
export type LayerSource = { kind: 'flags' } | { kind: 'env' } | { kind: 'file'; path: string };

function spell(k: string, source: LayerSource): string {
  if (source.kind === 'flags') return flagName(k);
  if (source.kind === 'env') return envName(k);
  return `"${k}" in ${source.path}`;
}

/**
 * Reads a secret file: the value is its content with one trailing newline removed. Returns the
 * value, or a sentence saying what is wrong with the file and what to do.
 */
export function readSecretFile(path: string, label: string, key: string): { value: string } | { problem: string } {
  const alt = `or set ${envName(key)}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { problem: `${label} ${path}: no such file; create it holding only the secret (chmod 600), ${alt}` };
    if (code === 'EACCES') return { problem: `${label} ${path}: permission denied; make it readable by the user that runs tunn (chown that user, chmod 600)` };
    if (code === 'EISDIR') return { problem: `${label} ${path} is a directory; pass the file that holds the secret` };
    return { problem: `${label} ${path}: cannot read it (${(err as Error).message})` };
  }
  const value = text.replace(/\r?\n$/, '');
  if (value.trim() === '') return { problem: `${label} ${path} is empty; write the secret into it, on one line` };
  if (!MULTILINE_SECRETS.has(key) && /[\r\n]/.test(value)) return { problem: `${label} ${path} holds more than one line; a secret file holds only the secret, on one line` };
  return { value };
}

/**
 * Replaces each `<key>File` of a layer with the file's content under `<key>`. Problems (a file
 * that cannot be used, or both the value and the file in one layer) are returned, not thrown,
 * so they are reported together with every other configuration error.
 */
export function resolveSecretFiles(layer: Record<string, unknown>, source: LayerSource): { layer: Record<string, unknown>; problems: string[]; failed: string[] } {
  const out = { ...layer };
  const problems: string[] = [];
  const failed: string[] = [];
  for (const k of SECRET_KEYS) {
    const path = out[fileKey(k)];
    if (path === undefined) continue;
    delete out[fileKey(k)];
    const label = spell(fileKey(k), source);
    if (out[k] !== undefined) {
      problems.push(`${spell(k, source)} and ${label} are both given; keep only ${label}`);
      failed.push(k);
      continue;
    }
    const r = readSecretFile(String(path), label, k);
    if ('problem' in r) {
      problems.push(r.problem);
      failed.push(k);
    } else out[k] = r.value;
  }
  return { layer: out, problems, failed };
}

function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== '';
  } catch {
    return false;
  }
}

/**
 * One warning per secret typed on the command line itself (`given` holds only those values),
 * pointing at the file and environment forms.
 */
export function commandLineSecretWarnings(given: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const k of SECRET_KEYS) {
    const v = given[k];
    if (typeof v !== 'string' || v === '') continue;
    if (SECRET_IF_PASSWORD.has(k) && !hasPassword(v)) continue;
    const what = SECRET_IF_PASSWORD.has(k) ? `the password in ${flagName(k)}` : flagName(k);
    out.push(`${what} on the command line is visible to every local user (ps, /proc/<pid>/cmdline); use ${flagName(fileKey(k))} FILE or set ${envName(k)} instead`);
  }
  return out;
}

/** Secret pieces shorter than this are not searched for: they would garble the message and guard nothing. */
const MIN_REDACTED = 4;

/** The pieces of the secrets in `settings` that must never appear in a message. */
function secretPieces(settings: Record<string, unknown>): string[] {
  const pieces = new Set<string>();
  for (const k of SECRET_KEYS) {
    const v = settings[k];
    if (typeof v !== 'string') continue;
    pieces.add(v);
    // The password alone too (a message may quote part of `user:pass` or of a URL).
    if (k === 'basicAuth' && v.includes(':')) pieces.add(v.slice(v.indexOf(':') + 1));
    // A TSIG key's secret alone: `secret "…";` in BIND's format, or the part after the last `:`.
    if (k === 'rfc2136Key') {
      for (const m of v.matchAll(/secret\s+"([^"]+)"/g)) pieces.add(m[1]!);
      if (!v.includes('{')) pieces.add(v.slice(v.lastIndexOf(':') + 1));
    }
    try {
      const pw = new URL(v).password;
      if (pw) {
        pieces.add(pw);
        pieces.add(decodeURIComponent(pw));
      }
    } catch {
      // not a URL: the whole value is the secret
    }
  }
  return [...pieces].filter((p) => p.length >= MIN_REDACTED).sort((a, b) => b.length - a.length);
}

/**
 * `message` with every secret value of `settings` (and the password inside a secret URL or
 * `user:pass`) replaced by `***`. Config errors go through this once, so no check added later
 * can echo a secret into a terminal, a CI log or a bug report.
 */
export function redactSecrets(message: string, settings: Record<string, unknown>): string {
  let out = message;
  for (const piece of secretPieces(settings)) out = out.split(piece).join('***');
  return out;
}
