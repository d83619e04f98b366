import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { DnsEndpoint } from '../client.ts';
import type { Dns01Provider } from '../dns01-provider.ts';
import { errorMessage, TunnError } from '../../lib/errors.ts';
import { normalizeHost } from '../../lib/host.ts';
import { waitForTxt, type WaitOptions } from './wait-visible.ts';

// DNS-01 through Cloudflare's documented REST API v4 with `fetch` (the `cloudflare` npm package
// is a large generated client for the whole API; tunn needs five calls). The zone is found by
// name (the relay's domain, then its parents), records are created and deleted by id, and
// "visible" is asked of the zone's Cloudflare nameservers (or `--dns-resolver`).
// Verified against the documented API (request shapes, error bodies), not the live service.

export const CLOUDFLARE_API = 'https://api.cloudflare.com/client/v4';
const TOKEN_HELP = 'check the token in --cloudflare-token-file (or TUNN_CLOUDFLARE_TOKEN): create one at dash.cloudflare.com → My Profile → API Tokens with Zone → DNS → Edit';

export interface CloudflareOptions {
  /** The relay's zone (challenge names are built beneath it). */
  zone: string;
  token: string;
  /** Default https://api.cloudflare.com/client/v4; tests point it at a local server. */
  apiUrl?: string;
  /** Where to check visibility instead of the zone's nameservers (`--dns-resolver`). */
  resolver?: DnsEndpoint;
  /** TTL of the TXT records written (Cloudflare's minimum is 60 s). */
  ttl?: number;
  timeoutMs?: number;
  wait?: WaitOptions;
}

interface CfZone {
  id: string;
  name: string;
  name_servers?: string[];
}

interface CfEnvelope<T> {
  success?: boolean;
  errors?: { code: number; message: string }[];
  result?: T;
}

/** Cloudflare's codes for a token it does not accept, or one without the permission asked for. */
const AUTH_CODES = new Set([1000, 6003, 6111, 9103, 9106, 9109, 10000]);
/** "Record already exists" (an identical TXT left by an earlier run): the value is there, which is what present() wants. */
const EXISTS_CODES = new Set([81057, 81058]);

class CfError extends Error {
  readonly status: number;
  readonly codes: number[];
  constructor(status: number, errors: { code: number; message: string }[]) {
    super(errors.length ? errors.map((e) => `code ${e.code}: ${e.message}`).join('; ') : `HTTP ${status}`);
    this.status = status;
    this.codes = errors.map((e) => e.code);
  }
  get auth(): boolean {
    return this.status === 401 || this.status === 403 || this.codes.some((c) => AUTH_CODES.has(c));
  }
}

export class CloudflareProvider implements Dns01Provider {
  readonly zone: string;
  readonly label = 'Cloudflare';
  readonly #o: CloudflareOptions;
  readonly #api: string;
  readonly #ids = new Map<string, string>();
  #cfZone: Promise<CfZone> | undefined;

  constructor(opts: CloudflareOptions) {
    this.#o = opts;
    this.zone = normalizeHost(opts.zone);
    this.#api = checkApiUrl(opts.apiUrl ?? CLOUDFLARE_API);
  }

  async present(name: string, value: string): Promise<void> {
    const zone = await this.cloudflareZone();
    const what = `adding TXT ${name} in Cloudflare zone ${zone.name}`;
    try {
      const rec = await this.#call<{ id: string }>('POST', `/zones/${zone.id}/dns_records`, { type: 'TXT', name, content: `"${value}"`, ttl: this.#o.ttl ?? 60 });
      this.#ids.set(`${normalizeHost(name)}\n${value}`, rec.id);
    } catch (err) {
      if (err instanceof CfError && err.codes.some((c) => EXISTS_CODES.has(c))) return;
      throw await this.#explain(err, what, zone);
    }
  }

  /** Deletes this value's record by id (the one present() made, else the one listed with this content): never the name's other values. */
  async cleanup(name: string, value: string): Promise<void> {
    const zone = await this.cloudflareZone();
    const what = `deleting TXT ${name} in Cloudflare zone ${zone.name}`;
    const key = `${normalizeHost(name)}\n${value}`;
    try {
      let ids = this.#ids.has(key) ? [this.#ids.get(key)!] : [];
      if (!ids.length) {
        const list = await this.#call<{ id: string; content: string }[]>('GET', `/zones/${zone.id}/dns_records?type=TXT&name=${encodeURIComponent(normalizeHost(name))}&per_page=100`);
        ids = list.filter((r) => r.content === value || r.content === `"${value}"`).map((r) => r.id);
      }
      for (const id of ids) await this.#call('DELETE', `/zones/${zone.id}/dns_records/${encodeURIComponent(id)}`);
      this.#ids.delete(key);
    } catch (err) {
      throw await this.#explain(err, what, zone);
    }
  }

  async waitVisible(name: string, value: string): Promise<void> {
    let servers: DnsEndpoint[];
    if (this.#o.resolver) servers = [this.#o.resolver];
    else {
      const zone = await this.cloudflareZone();
      const hosts = zone.name_servers ?? [];
      if (!hosts.length) throw new TunnError('UNAVAILABLE', `Cloudflare lists no nameservers for zone ${zone.name}: pass --dns-resolver HOST:PORT to check TXT records there`);
      servers = await Promise.all(
        hosts.map(async (h) => {
          if (isIP(h)) return { host: h, port: 53 };
          const addr = await lookup(h).catch((err: unknown) => {
            throw new TunnError('UNAVAILABLE', `cannot resolve Cloudflare nameserver ${h} to check TXT ${name} (${errorMessage(err)}): pass --dns-resolver HOST:PORT to check there instead`, { cause: err });
          });
          return { host: addr.address, port: 53 };
        }),
      );
    }
    await waitForTxt(servers, name, value, this.#o.wait);
  }

  /** Checks that Cloudflare accepts the token (GET /user/tokens/verify). */
  async verifyToken(): Promise<void> {
    try {
      const r = await this.#call<{ status?: string }>('GET', '/user/tokens/verify');
      if (r.status && r.status !== 'active') throw new TunnError('FORBIDDEN', `Cloudflare says the API token is ${r.status}, not active: ${TOKEN_HELP}`);
    } catch (err) {
      if (err instanceof CfError && err.auth) throw new TunnError('FORBIDDEN', `Cloudflare refused the API token (${err.message}): ${TOKEN_HELP}`, { cause: err });
      throw this.#plain(err, 'checking the API token with Cloudflare');
    }
  }

  /** The zone that holds the relay's domain: the domain itself or its nearest parent the token can see. */
  cloudflareZone(): Promise<CfZone> {
    if (!this.#cfZone) {
      this.#cfZone = this.#findZone();
      this.#cfZone.catch(() => (this.#cfZone = undefined));
    }
    return this.#cfZone;
  }

  async #findZone(): Promise<CfZone> {
    const labels = this.zone.split('.');
    const candidates = labels.slice(0, -1).map((_, i) => labels.slice(i).join('.'));
    try {
      for (const name of candidates) {
        const zones = await this.#call<CfZone[]>('GET', `/zones?name=${encodeURIComponent(name)}`);
        const z = zones.find((x) => normalizeHost(x.name) === name);
        if (z) return z;
      }
    } catch (err) {
      throw await this.#explain(err, `looking up the Cloudflare zone of ${this.zone}`);
    }
    throw new TunnError('NOT_FOUND', `no Cloudflare zone for ${this.zone} or a parent (${candidates.join(', ')}) is visible to this API token: add the zone to the Cloudflare account, or give the token Zone → Zone → Read and Zone → DNS → Edit for it`);
  }

  /** A Cloudflare refusal in words: a token Cloudflare does not accept, or one without the permission. */
  async #explain(err: unknown, what: string, zone?: CfZone): Promise<Error> {
    if (!(err instanceof CfError) || !err.auth) return this.#plain(err, what);
    try {
      await this.verifyToken();
    } catch (verr) {
      return new TunnError('FORBIDDEN', `${what}: ${errorMessage(verr)}`, { cause: err });
    }
    const where = zone ? `zone ${zone.name}` : `the zone of ${this.zone}`;
    return new TunnError('FORBIDDEN', `${what}: the API token is valid but may not do this (${err.message}): give it Zone → DNS → Edit for ${where}`, { cause: err });
  }

  #plain(err: unknown, what: string): Error {
    if (err instanceof TunnError) return err;
    if (err instanceof CfError) {
      const why = err.status === 429 ? 'Cloudflare is rate-limiting this token; the relay tries again later' : `Cloudflare answered HTTP ${err.status} (${err.message})`;
      return new TunnError('UNAVAILABLE', `${what}: ${why}`, { cause: err });
    }
    return new TunnError('UNAVAILABLE', `${what}: cannot reach the Cloudflare API at ${this.#api}: ${errorMessage(err)}`, { cause: err });
  }

  async #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(this.#api + path, {
      method,
      headers: { authorization: `Bearer ${this.#o.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(this.#o.timeoutMs ?? 15_000),
      redirect: 'error',
    }).catch((err: unknown) => {
      throw (err as { cause?: unknown }).cause instanceof Error ? (err as { cause: Error }).cause : err;
    });
    let env: CfEnvelope<T>;
    try {
      env = (await res.json()) as CfEnvelope<T>;
    } catch {
      throw new CfError(res.status, []);
    }
    if (!res.ok || env.success === false) throw new CfError(res.status, env.errors ?? []);
    return env.result as T;
  }
}

/** The token goes to this URL: https only, or http to a loopback address (a test's server). */
function checkApiUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TunnError('CONFIG_INVALID', `--cloudflare-api-url "${url}" is not a URL`);
  }
  const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(u.hostname);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) throw new TunnError('CONFIG_INVALID', `--cloudflare-api-url must be https:// (the API token is sent to it); http:// is accepted only for a loopback address`);
  return url.replace(/\/+$/, '');
}
