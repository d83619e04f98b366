// The pages the relay answers with itself. Each says what happened and what to do; none
// reveals which other tunnels exist.

import type { HttpParseError } from '../lib/http1.ts';
import { esc, PAGE_HEADERS, reason, renderPage, REQUEST_ID_HEADER } from '../lib/page.ts';

export { reason };

export interface LocalResponse {
  status: number;
  headers: [string, string][];
  body: string | Buffer;
  /** Close the connection after this response. */
  close?: boolean;
  /** The body again with the request id in its footer (pages from htmlPage). */
  render?: (requestId: string) => string;
}

export function escapeHtml(s: string): string {
  return esc(s);
}

/** A page in tunn's one template (src/lib/page.ts); `detail` is trusted HTML. */
export function htmlPage(status: number, title: string, detail: string, opts: { close?: boolean; headers?: [string, string][] } = {}): LocalResponse {
  const render = (requestId?: string): string => renderPage(title, `<p>${detail}</p>`, { status, requestId });
  return {
    status,
    headers: [...PAGE_HEADERS, ...(opts.headers ?? [])],
    body: render(),
    close: opts.close,
    render,
  };
}

export const pages = {
  notFound: (host: string) =>
    htmlPage(404, 'No tunnel here', `There is no tunnel at <code>${escapeHtml(host)}</code>. Check the address, or start one with <code>tunn &lt;port&gt; -n &lt;name&gt;</code>.`),
  offline: (host: string) =>
    htmlPage(
      503,
      'Tunnel offline',
      `The agent serving <code>${escapeHtml(host)}</code> is not connected right now. It reconnects by itself when its machine is back online; try again in a moment.`,
      { headers: [['Retry-After', '5']] },
    ),
  // The target's address stays with the agent (its log names it): a visitor learns only that
  // the service is not answering, and the kind of failure when it tells the owner what to do.
  targetDown: (cause: string) =>
    htmlPage(
      502,
      'The service behind this tunnel is not answering',
      `The tunnel is up, but the service behind it is not answering${/^[A-Z][A-Z0-9_]{1,40}$/.test(cause) ? ` (${escapeHtml(cause)})` : ''}. ${
        cause === 'STREAM_KIND'
          ? 'The agent serving it does not handle this kind of connection: if this is your tunnel, update tunn on the agent’s machine.'
          : /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(cause)
            ? 'Its certificate is not trusted: if this is your tunnel, run the agent with <code>--insecure-target</code> for a self-signed one.'
            : 'If this is your tunnel, check that the local service is running: the agent’s log names the address it tried.'
      }`,
      { close: true },
    ),
  upgradeRefused: (protocols: string[]) =>
    htmlPage(
      400,
      'Upgrade not forwarded',
      `This tunnel forwards WebSocket upgrades only, not <code>Upgrade: ${escapeHtml(protocols.join(', '))}</code>. If this is your tunnel, start the agent with <code>--allow-upgrade ${escapeHtml(protocols[0]!.split('/')[0]!.toLowerCase())}</code> to forward it.`,
      { close: true },
    ),
  /** Plain HTTP (or HTTPS the relay terminated) for a `tunn tls` host, whose TLS ends at its own service. */
  upgradeRequired: (host: string, isPublic: boolean) =>
    htmlPage(
      426,
      'TLS required',
      `<code>${escapeHtml(host)}</code> is served over TLS that ends at its own service, not over HTTP through this relay. ${isPublic ? `Connect with TLS to <code>${escapeHtml(host)}</code> (for a web service: <code>https://${escapeHtml(host)}</code>, which the relay passes through untouched).` : `It is private: reach it with <code>tunn connect ${escapeHtml(host)}</code>.`}`,
      { close: true, headers: [['Upgrade', 'TLS/1.3, TLS/1.2']] },
    ),
  tunnelLost: () =>
    htmlPage(502, 'Tunnel connection lost', 'The connection to the agent ended before it answered. Try again.', { close: true }),
  badRequest: (why: string) => htmlPage(400, 'Bad request', escapeHtml(why), { close: true }),
  headTooLarge: () => htmlPage(431, 'Request headers too large', 'The request head is larger than this relay accepts.', { close: true }),
  notImplemented: (why: string) => htmlPage(501, 'Not implemented', escapeHtml(why), { close: true }),
  methodNotAllowed: (method: string) =>
    htmlPage(405, 'Method not allowed', `<code>${escapeHtml(method)}</code> is not forwarded through a tunnel.`, { headers: [['Allow', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS']] }),
  misdirected: () => htmlPage(421, 'Misdirected request', 'This connection belongs to another host; open a new connection.', { close: true }),
  timeout: () => htmlPage(408, 'Request timeout', 'The request head did not arrive in time.', { close: true }),
  /** A request head the parser refused: 431 too large, 501 a framing tunn does not forward, else 400. */
  unparsable: (err: HttpParseError) =>
    err.status === 431 ? pages.headTooLarge() : err.status === 501 ? pages.notImplemented(err.message) : pages.badRequest(`The request could not be parsed: ${err.message}.`),
  /** `location` comes from the visitor's request (host and path): escaped in the page. */
  movedToHttps: (location: string) =>
    htmlPage(308, 'Moved to HTTPS', `This relay serves HTTPS only: <a href="${escapeHtml(location)}">continue</a>.`, { headers: [['Location', location]] }),
};

/**
 * Serializes a local response as HTTP/1.1 bytes. HEAD responses carry no body. With a
 * `requestId` (the id of the relay's log line), pages show it and the response carries it.
 */
export function serializeResponse(r: LocalResponse, opts: { head?: boolean; keepAlive: boolean; requestId?: string }): Buffer {
  const text = opts.requestId && r.render ? r.render(opts.requestId) : r.body;
  const body = typeof text === 'string' ? Buffer.from(text) : text;
  let s = `HTTP/1.1 ${r.status} ${reason(r.status)}\r\n`;
  for (const [k, v] of r.headers) s += `${k}: ${v}\r\n`;
  if (opts.requestId) s += `${REQUEST_ID_HEADER}: ${opts.requestId}\r\n`;
  s += `Content-Length: ${body.length}\r\n`;
  if (!opts.keepAlive || r.close) s += 'Connection: close\r\n';
  s += '\r\n';
  return opts.head ? Buffer.from(s, 'latin1') : Buffer.concat([Buffer.from(s, 'latin1'), body]);
}
