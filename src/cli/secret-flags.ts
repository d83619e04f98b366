import type { Command } from 'commander';
import { commandLineSecretWarnings, envName, fileKey, flagName, type SecretKey } from '../config/secrets.ts';

// The CLI side of the secrets policy (src/config/secrets.ts): every secret flag comes with its
// `-file` form, and a secret typed on the command line itself draws a warning.

/**
 * Adds `--<flag> <placeholder>` and `--<flag>-file <file>` for a secret setting. `fileOnly` adds
 * only the file form (a secret that never had a flag, such as the secret-box key).
 */
export function secretOption(cmd: Command, key: SecretKey, placeholder: string, what: string, opts: { fileOnly?: boolean; env?: boolean; multiline?: boolean } = {}): Command {
  const env = opts.env === false ? '' : `; env ${envName(key)}`;
  if (!opts.fileOnly) cmd.option(`${flagName(key)} <${placeholder}>`, `${what}${env} (visible to other local users: prefer ${flagName(fileKey(key))})`);
  const env2 = opts.env === false ? '' : `env ${envName(fileKey(key))}`;
  return cmd.option(`${flagName(fileKey(key))} <file>`, `read ${what} from this file (${opts.multiline ? env2 : `one line${env2 && `; ${env2}`}`})`);
}

/** Writes one warning per secret given on the command line of `cmd` (not from env or defaults). */
export function warnSecretsOnCommandLine(cmd: Command, write: (s: string) => void = (s) => process.stderr.write(s)): void {
  const given: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cmd.opts())) if (cmd.getOptionValueSource(k) === 'cli') given[k] = v;
  for (const w of commandLineSecretWarnings(given)) write(`tunn: warning: ${w}\n`);
}
