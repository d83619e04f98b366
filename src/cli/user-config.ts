import { existsSync, mkdirSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { agentSchema, fromFile, inTunnWords } from '../config/config.ts';
import { fileKey, flagName, isSecretKey } from '../config/secrets.ts';
import { TunnError } from '../lib/errors.ts';
import { writePrivateFile } from '../lib/private-files.ts';
import { configDir } from './config-dir.ts';

// The user's default agent settings: config.json in the config dir (~/.config/tunn), written by
// `tunn config set relay https://tunn.example.com`. It is the lowest layer the agent reads
// (defaults < this file < login < --config < env < flags); `tunn status` and the other API
// commands take the relay and relay CA from it too.

export function userConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'config.json');
}

export function readUserConfig(env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const p = userConfigPath(env);
  return existsSync(p) ? fromFile(p) : {};
}

/** Settings that name files: stored absolute, so they work from any directory. */
const PATH_KEYS = new Set(['relayCa', ...['token', 'basicAuth'].map(fileKey)]);
const LIST_KEYS = new Set(['allow', 'allowIp', 'allowUpgrade']);

/** The keys `tunn config set` takes: the agent's settings, secrets only as files. */
export function settableKeys(): string[] {
  const keys = Object.keys(agentSchema.shape).filter((k) => !isSecretKey(k));
  return [...keys, fileKey('token'), fileKey('basicAuth')];
}

/** Checks one setting and returns the value to store; throws CONFIG_INVALID saying what is wrong and what to do. */
export function parseSetting(key: string, raw: string, cwd = process.cwd()): unknown {
  if (isSecretKey(key)) throw new TunnError('CONFIG_INVALID', `${key} is a secret and would be written in the clear from a command line: set ${fileKey(key)} to a file holding it (mode 0600)${key === 'token' ? ', or sign in with `tunn login`' : ''}`);
  const keys = settableKeys();
  const camel = key.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  if (!keys.includes(camel)) throw new TunnError('CONFIG_INVALID', `unknown setting "${key}": one of ${keys.join(', ')}`);
  let value: unknown = raw;
  if (PATH_KEYS.has(camel)) value = isAbsolute(raw) ? raw : resolve(cwd, raw);
  else if (LIST_KEYS.has(camel)) value = raw.split(',').map((s) => s.trim()).filter(Boolean);
  else if (/^(true|false)$/.test(raw) && ['public', 'quiet', 'json', 'insecureTarget', 'inspectSecrets', 'inspect'].includes(camel)) value = raw === 'true';
  else if (/^\d+$/.test(raw) && ['sessions', 'rateLimit', 'rateLimitTunnel'].includes(camel)) value = Number(raw);
  const schema = agentSchema.shape[camel as keyof typeof agentSchema.shape];
  const r = schema?.safeParse(value, { error: inTunnWords });
  if (r && !r.success) throw new TunnError('CONFIG_INVALID', `${flagName(camel)} "${raw}": ${r.error.issues[0]!.message}`);
  return value;
}

export function setUserSetting(key: string, raw: string, env: NodeJS.ProcessEnv = process.env): { key: string; value: unknown; path: string } {
  const value = parseSetting(key, raw);
  const camel = key.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const cfg = { ...readUserConfig(env), [camel]: value };
  return { key: camel, value, path: writeUserConfig(cfg, env) };
}

export function unsetUserSetting(key: string, env: NodeJS.ProcessEnv = process.env): { key: string; path: string; was: boolean } {
  const camel = key.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  const cfg = readUserConfig(env);
  const was = camel in cfg;
  delete cfg[camel];
  return { key: camel, path: writeUserConfig(cfg, env), was };
}

function writeUserConfig(cfg: Record<string, unknown>, env: NodeJS.ProcessEnv): string {
  mkdirSync(configDir(env), { recursive: true, mode: 0o700 });
  const p = userConfigPath(env);
  writePrivateFile(p, JSON.stringify(cfg, null, 2) + '\n');
  return p;
}
