import { homedir } from 'node:os';
import { join } from 'node:path';

/** The user's tunn config dir: TUNN_CONFIG_DIR, else $XDG_CONFIG_HOME/tunn, else ~/.config/tunn. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TUNN_CONFIG_DIR) return env.TUNN_CONFIG_DIR;
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'tunn');
}
