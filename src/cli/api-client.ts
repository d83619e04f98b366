import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { isAbsolute, join, resolve } from 'node:path';
import { rootCertificates } from 'node:tls';
import { localhostAwareLookup } from '../agent/target.ts';
import { fromEnv, resolveSecretLayer } from '../config/config.ts';
import { TunnError, type TunnErrorCode } from '../lib/errors.ts';
import { writePrivateFile } from '../lib/private-files.ts';
import { configDir } from './config-dir.ts';
import { readUserConfig } from './user-config.ts';

// The CLI's side of the relay API: where credentials live (the user's config dir, mode 0600)
// and a small JSON client over node:https that trusts --relay-ca and resolves *.localhost.

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

export class ApiClient {
  readonly target: ApiTarget;
  readonly #ca: string | undefined;

  constructor(target: ApiTarget) {
    this.target = target;
    if (target.relayCa) {
      try {
        this.#ca = readFileSync(target.relayCa, 'utf8');
      } catch (err) {
        throw new TunnError('CONFIG_INVALID', `cannot read --relay-ca ${target.relayCa}: ${(err as Error).message}`);
      }
    }
  }

  /** Calls the API; throws TunnError with the relay's message on a non-2xx answer. */
  /** `headers` adds headers computed from the exact payload sent (a signature). */
  async call<T>(method: string, path: string, body?: unknown, opts: { auth?: boolean; raw?: boolean; headers?: (payload: string) => Record<string, string> } = {}): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (opts.auth !== false) {
      if (!this.target.token) throw new TunnError('AUTH_REQUIRED', `not signed in to ${this.target.relay}: run \`tunn login --relay ${this.target.relay}\` or pass --token-file FILE (or set TUNN_TOKEN)`);
      headers.authorization = `Bearer ${this.target.token}`;
    }
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    if (opts.headers) Object.assign(headers, opts.headers(payload ?? ''));
    const res = await this.#send(method, path, headers, payload);
    let json: unknown;
    try {
      json = res.body ? JSON.parse(res.body) : {};
    } catch {
      throw new TunnError('UNAVAILABLE', `${this.target.relay} answered ${method} ${path} with ${res.status} and a body that is not JSON: is it a tunn relay?`);
    }
    if (res.status >= 200 && res.status < 300) return json as T;
    if (opts.raw) return json as T;
    const e = (json as { error?: { code?: string; message?: string } | string; error_description?: string }).error;
    if (e && typeof e === 'object' && this.target.tokenFrom === 'login' && (e.code === 'AUTH_TOKEN_REVOKED' || e.code === 'AUTH_INVALID_TOKEN')) {
      throw new TunnError(e.code, `the sign-in saved for ${this.target.relay} no longer works (${e.message ?? 'refused'}): run \`tunn login --relay ${this.target.relay}\``);
    }
    if (e && typeof e === 'object') throw new TunnError((e.code as TunnErrorCode) ?? 'UNAVAILABLE', e.message ?? `HTTP ${res.status}`);
    throw new TunnError('UNAVAILABLE', `${method} ${path}: HTTP ${res.status} ${typeof e === 'string' ? e : ''}`.trim());
  }

  #send(method: string, path: string, headers: Record<string, string>, payload: string | undefined): Promise<{ status: number; body: string }> {
    const url = new URL(path, this.target.relay);
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { method, headers, ca: this.#ca ? [...rootCertificates, this.#ca] : undefined, lookup: localhostAwareLookup as never, agent: false, timeout: 30_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'ECONNREFUSED' ? ' (is the relay running?)' : err.code?.includes('CERT') || err.code?.includes('SELF_SIGNED') ? ' (pass the relay\'s CA with --relay-ca)' : '';
        reject(new TunnError('UNAVAILABLE', `cannot reach ${this.target.relay}: ${err.code ?? err.message}${hint}`));
      });
      req.end(payload);
    });
  }
}
