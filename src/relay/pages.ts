// The pages the relay answers with itself. Each says what happened and what to do; none
// reveals which other tunnels exist.

export interface LocalResponse {
  status: number;
  headers: [string, string][];
  body: string | Buffer;
  /** Close the connection after this response. */
  close?: boolean;
}

const REASONS: Record<number, string> = {
  200: 'OK', 301: 'Moved Permanently', 302: 'Found', 308: 'Permanent Redirect', 400: 'Bad Request', 401: 'Unauthorized',
  403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout', 421: 'Misdirected Request',
  426: 'Upgrade Required', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error',
  501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

export function reason(status: number): string {
  return REASONS[status] ?? 'Unknown';
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function htmlPage(status: number, title: string, detail: string, opts: { close?: boolean; headers?: [string, string][] } = {}): LocalResponse {
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${status} ${escapeHtml(title)} · tunn</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:12vh auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}code{background:#f3f3f3;padding:.1em .3em;border-radius:3px}.s{color:#888}</style></head>
<body><h1>${escapeHtml(title)}</h1><p>${detail}</p><p class="s">${status} ${reason(status)} · tunn</p></body></html>
`;
  return {
    status,
    headers: [['Content-Type', 'text/html; charset=utf-8'], ['Cache-Control', 'no-store'], ...(opts.headers ?? [])],
    body,
    close: opts.close,
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
        /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(cause)
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
  tunnelLost: () =>
    htmlPage(502, 'Tunnel connection lost', 'The connection to the agent ended before it answered. Try again.', { close: true }),
  badRequest: (why: string) => htmlPage(400, 'Bad request', escapeHtml(why), { close: true }),
  headTooLarge: () => htmlPage(431, 'Request headers too large', 'The request head is larger than this relay accepts.', { close: true }),
  notImplemented: (why: string) => htmlPage(501, 'Not implemented', escapeHtml(why), { close: true }),
  methodNotAllowed: (method: string) =>
    htmlPage(405, 'Method not allowed', `<code>${escapeHtml(method)}</code> is not forwarded through a tunnel.`, { headers: [['Allow', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS']] }),
  misdirected: () => htmlPage(421, 'Misdirected request', 'This connection belongs to another host; open a new connection.', { close: true }),
  timeout: () => htmlPage(408, 'Request timeout', 'The request head did not arrive in time.', { close: true }),
};

/** Serializes a local response as HTTP/1.1 bytes. HEAD responses carry no body. */
export function serializeResponse(r: LocalResponse, opts: { head?: boolean; keepAlive: boolean }): Buffer {
  const body = typeof r.body === 'string' ? Buffer.from(r.body) : r.body;
  let s = `HTTP/1.1 ${r.status} ${reason(r.status)}\r\n`;
  for (const [k, v] of r.headers) s += `${k}: ${v}\r\n`;
  s += `Content-Length: ${body.length}\r\n`;
  if (!opts.keepAlive || r.close) s += 'Connection: close\r\n';
  s += '\r\n';
  return opts.head ? Buffer.from(s, 'latin1') : Buffer.concat([Buffer.from(s, 'latin1'), body]);
}
