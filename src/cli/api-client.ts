import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { ClientResponse } from 'hono/client';
import { ApiError, apiResult, createApiClient, type AnyBody, type ApiClient, type SuccessBody } from '../api/client.ts';
import { fromEnv, resolveSecretLayer } from '../config/config.ts';
import { TunnError, type TunnErrorCode } from '../lib/errors.ts';
import { writePrivateFile } from '../lib/private-files.ts';
import { configDir } from './config-dir.ts';
import { relayFetch } from './relay-fetch.ts';
import { readUserConfig } from './user-config.ts';

// The CLI's side of the relay API: where credentials live (the user's config dir, mode 0600)
// and the typed API client over a transport that trusts --relay-ca and resolves *.localhost.

export interface SavedCredentials {
  token: string;
  email?: string;
  relayCa?: string;
}

interface CredentialsFile {
  default?: string;
  relays: Record<string, SavedCredentials>;
}

export { configDir };

function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'credentials.json');
}

function readFile(env: NodeJS.ProcessEnv = process.env): CredentialsFile {
  const p = credentialsPath(env);
  if (!existsSync(p)) return { relays: {} };
  try {
    const v = JSON.parse(readFileSync(p, 'utf8')) as CredentialsFile;
    return { default: v.default, relays: v.relays ?? {} };
  } catch {
    throw new TunnError('CONFIG_INVALID', `${p} is damaged; delete it and run \`tunn login\` again`);
  }
}

export function saveCredentials(relay: string, c: SavedCredentials): string {
  const dir = configDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = readFile();
  // A relative --relay-ca would mean another file from every other directory.
  f.relays[normalizeRelay(relay)] = { ...c, relayCa: c.relayCa && !isAbsolute(c.relayCa) ? resolve(c.relayCa) : c.relayCa };
  f.default = normalizeRelay(relay);
  const p = credentialsPath();
  writePrivateFile(p, JSON.stringify(f, null, 2) + '\n');
  return p;
}

export function removeCredentials(relay: string): void {
  const f = readFile();
  delete f.relays[normalizeRelay(relay)];
  if (f.default === normalizeRelay(relay)) f.default = Object.keys(f.relays)[0];
  writePrivateFile(credentialsPath(), JSON.stringify(f, null, 2) + '\n');
}

export function loadCredentials(relay?: string, env: NodeJS.ProcessEnv = process.env): (SavedCredentials & { relay: string }) | undefined {
  const f = readFile(env);
  const r = relay ? normalizeRelay(relay) : f.default;
  if (!r || !f.relays[r]) return undefined;
  return { relay: r, ...f.relays[r]! };
}

export function normalizeRelay(url: string): string {
  try {
    const u = new URL(url);
    return u.origin;
  } catch {
    throw new TunnError('CONFIG_INVALID', `--relay "${url}" is not a URL; pass e.g. https://tunn.example.com`);
  }
}

export interface ApiTarget {
  relay: string;
  token?: string;
  relayCa?: string;
  /** Where the token came from: a refused saved one means signing in again. */
  tokenFrom?: 'flags' | 'env' | 'login';
}

/** --relay/--token (--token-file)/--relay-ca from flags, then TUNN_* env, then `tunn config set`, then saved credentials. */
export function resolveApiTarget(flags: { relay?: string; token?: string; tokenFile?: string; relayCa?: string }, env: NodeJS.ProcessEnv = process.env): ApiTarget {
  const user = readUserConfig(env) as { relay?: string; relayCa?: string; tokenFile?: string };
  const relayFlag = flags.relay ?? env.TUNN_RELAY ?? user.relay;
  const saved = loadCredentials(relayFlag, env);
  const relay = relayFlag ?? saved?.relay;
  if (!relay) throw new TunnError('AUTH_REQUIRED', 'no relay: pass --relay https://<relay>, set one with `tunn config set relay https://<relay>`, or sign in with `tunn login --relay https://<relay>`');
  const fromFlags = resolveSecretLayer({ token: flags.token, tokenFile: flags.tokenFile });
  const fromEnvironment = resolveSecretLayer(fromEnv(['token'], env));
  const fromUser = user.tokenFile ? resolveSecretLayer({ tokenFile: user.tokenFile }) : {};
  const token = (fromFlags.token ?? fromEnvironment.token ?? fromUser.token ?? saved?.token) as string | undefined;
  const tokenFrom = fromFlags.token ? 'flags' : fromEnvironment.token || fromUser.token ? 'env' : saved?.token ? 'login' : undefined;
  return { relay: normalizeRelay(relay), token, tokenFrom, relayCa: flags.relayCa ?? env.TUNN_RELAY_CA ?? user.relayCa ?? saved?.relayCa };
}

/**
 * The CLI's side of /v1: the typed client (src/api/client.ts) over the CLI's transport, and one
 * call() that turns a refusal into a TunnError with the relay's message.
 */
export class RelayApi {
  readonly target: ApiTarget;
  readonly client: ApiClient;

  constructor(target: ApiTarget) {
    this.target = target;
    let ca: string | undefined;
    if (target.relayCa) {
      try {
        ca = readFileSync(target.relayCa, 'utf8');
      } catch (err) {
        throw new TunnError('CONFIG_INVALID', `cannot read --relay-ca ${target.relayCa}: ${(err as Error).message}`);
      }
    }
    this.client = createApiClient(target.relay, {
      fetch: relayFetch({ relay: target.relay, ca }),
      headers: (): Record<string, string> => ({ accept: 'application/json', ...(target.token ? { authorization: `Bearer ${target.token}` } : {}) }),
    });
  }

  /**
   * Calls the API (`send` picks the route on the typed client); throws TunnError with the
   * relay's message on a non-2xx answer. `auth: false` for the calls made before signing in.
   */
  async call<R extends ClientResponse<unknown, number, string>>(send: (api: ApiClient) => Promise<R>, opts: { auth?: boolean } = {}): Promise<SuccessBody<R>> {
    if (opts.auth !== false && !this.target.token) {
      throw new TunnError('AUTH_REQUIRED', `not signed in to ${this.target.relay}: run \`tunn login --relay ${this.target.relay}\` or pass --token-file FILE (or set TUNN_TOKEN)`);
    }
    try {
      return await apiResult(await send(this.client));
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (this.target.tokenFrom === 'login' && (err.code === 'AUTH_TOKEN_REVOKED' || err.code === 'AUTH_INVALID_TOKEN')) {
        throw new TunnError(err.code, `the sign-in saved for ${this.target.relay} no longer works (${err.message}): run \`tunn login --relay ${this.target.relay}\``);
      }
      throw new TunnError(err.code as TunnErrorCode, err.message);
    }
  }

  /** The body of any answer, success or not (the device-login poll reads RFC 8628's errors); never signed. */
  async callRaw<R extends ClientResponse<unknown, number, string>>(send: (api: ApiClient) => Promise<R>): Promise<AnyBody<R>> {
    const res = await send(this.client);
    try {
      return (await res.json()) as AnyBody<R>;
    } catch {
      throw new TunnError('UNAVAILABLE', `${res.url.split('?')[0]} answered ${res.status} with a body that is not JSON: is it a tunn relay?`);
    }
  }
}
