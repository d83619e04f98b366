import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import { localhostAwareLookup } from '../agent/target.ts';
import { TunnError } from '../lib/errors.ts';

// The CLI's transport for the typed API client: a fetch over node:http(s) that trusts the
// relay's extra CA (--relay-ca) besides the system's, resolves *.localhost to loopback, and
// says what to do when the relay cannot be reached.

export interface RelayFetchOptions {
  /** The relay's origin, for messages. */
  relay: string;
  /** Extra CA certificate (PEM) to trust. */
  ca?: string;
  timeoutMs?: number;
}

export function relayFetch(opts: RelayFetchOptions): (input: RequestInfo | URL, init?: RequestInit) => Promise<Response> {
  const ca = opts.ca ? [...rootCertificates, opts.ca] : undefined;
  return async (input, init) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const payload = request.body ? Buffer.from(await request.arrayBuffer()) : undefined;
    const headers: Record<string, string> = {};
    request.headers.forEach((v, k) => (headers[k] = v));
    if (payload) headers['content-length'] = String(payload.length);
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise<Response>((resolve, reject) => {
      const req = mod.request(url, { method: request.method, headers, ca, lookup: localhostAwareLookup as never, agent: false, timeout: opts.timeoutMs ?? 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(new TunnError('UNAVAILABLE', `reading the answer of ${opts.relay}: ${err.message}`)));
        res.on('end', () => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) h.append(k, one);
          const status = res.statusCode ?? 0;
          const body = status === 204 || status === 304 ? null : Buffer.concat(chunks);
          const response = new Response(body, { status, headers: h });
          // As a browser's fetch would: messages about the answer can name what was asked.
          Object.defineProperty(response, 'url', { value: request.url });
          resolve(response);
        });
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'ECONNREFUSED' ? ' (is the relay running?)' : err.code?.includes('CERT') || err.code?.includes('SELF_SIGNED') ? " (pass the relay's CA with --relay-ca)" : '';
        reject(new TunnError('UNAVAILABLE', `cannot reach ${opts.relay}: ${err.code ?? err.message}${hint}`));
      });
      req.end(payload);
    });
  };
}
