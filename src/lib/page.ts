import { randomBytes } from 'node:crypto';

// The one page template of every page tunn shows a visitor: the relay's own answers (404,
// offline, 502, 408, …), the gate's refusals (403, 401, 429, IP refused) and the sign-in
// pages. A page has a title, what happened and what to do (the body), and a footer with the
// status and the request id the relay logged for that request, so a visitor can quote it to
// the tunnel's owner. Pages carry no scripts (the CSP below forbids them) and fit a 375 px
// screen without horizontal scrolling (long names wrap); dark mode follows the system.
//
// Referrer-Policy is same-origin, not no-referrer: under no-referrer a browser sends
// `Origin: null` with the page's own form posts (Fetch, "append a request Origin header"),
// and csrf.ts refuses null. Other sites still get no Referer (no code or return URL leaks).

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** The headers of every HTML page tunn serves itself. */
export const PAGE_HEADERS: readonly [string, string][] = [
  ['content-type', 'text/html; charset=utf-8'],
  ['cache-control', 'no-store'],
  ['content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'"],
  ['x-content-type-options', 'nosniff'],
  ['referrer-policy', 'same-origin'],
];

/** The response header that carries the request id shown in the page's footer. */
export const REQUEST_ID_HEADER = 'tunn-request-id';

/** A short random id for one request: in the relay's log line, the page footer and REQUEST_ID_HEADER. */
export function newRequestId(): string {
  return randomBytes(9).toString('base64url');
}

const REASONS: Record<number, string> = {
  200: 'OK', 301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 308: 'Permanent Redirect', 400: 'Bad Request', 401: 'Unauthorized',
  403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout', 421: 'Misdirected Request',
  426: 'Upgrade Required', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error',
  501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

export function reason(status: number): string {
  return REASONS[status] ?? 'Unknown';
}

export interface PageOptions {
  /** Shown in the footer with its reason phrase; error statuses also colour the mark. */
  status?: number;
  /** A warning shown above the title (role=alert). */
  banner?: string;
  /** The id of the relay's log line for this request. */
  requestId?: string;
}

const STYLE = `
:root{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--fg:#1b1f24;--muted:#5c6570;--line:#dfe3e8;--accent:#2457c5;--accent-fg:#fff;--code:#eef1f4;--bad:#b3261e;--ok:#1d7a46}
@media (prefers-color-scheme:dark){:root{--bg:#111418;--card:#1b2026;--fg:#e6e9ed;--muted:#9aa4af;--line:#2d343c;--accent:#7aa7ff;--accent-fg:#0d1117;--code:#262d35;--bad:#ff8a80;--ok:#6fd3a0}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;overflow-wrap:anywhere}
main{max-width:36rem;margin:clamp(1rem,8vh,5rem) auto;padding:0 1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:.75rem;padding:clamp(1.1rem,4vw,2rem)}
.brand{display:flex;align-items:center;gap:.5rem;margin:0 0 1rem;color:var(--muted);font-weight:600;letter-spacing:.02em}
.mark{display:inline-block;width:.8rem;height:.8rem;border-radius:50%;background:var(--ok)}
.error .mark{background:var(--bad)}
h1{font-size:clamp(1.3rem,4.5vw,1.6rem);line-height:1.25;margin:0 0 .75rem}
p,ul{margin:.75rem 0}
a{color:var(--accent)}
code,.code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--code);border-radius:.25rem;padding:.05em .3em;font-size:.92em}
.code{display:inline-block;font-size:1.6rem;letter-spacing:.2rem;padding:.2rem .6rem}
.banner{background:var(--bad);color:var(--card);padding:.6rem .8rem;border-radius:.4rem;font-weight:600;margin:0 0 1rem}
form{margin:1rem 0}
input[type=email],input[type=text]{width:100%;max-width:100%;padding:.6rem;font:inherit;color:var(--fg);background:var(--bg);border:1px solid var(--line);border-radius:.4rem}
button,.button{display:inline-block;padding:.55rem 1.1rem;margin:.25rem .25rem .25rem 0;border:1px solid var(--accent);border-radius:.4rem;background:var(--accent);color:var(--accent-fg);font:inherit;font-weight:600;text-decoration:none;cursor:pointer}
button.secondary,.button.secondary{background:transparent;color:var(--accent)}
.muted{color:var(--muted);font-size:.9rem}
table{width:100%;border-collapse:collapse;table-layout:fixed}
td,th{text-align:left;vertical-align:top;padding:.25rem .5rem;border-bottom:1px solid var(--line);font-size:.85rem}
footer{margin:1rem .25rem 0;color:var(--muted);font-size:.85rem}
`;

/** A whole page; `body` is trusted HTML built with esc(). */
export function renderPage(title: string, body: string, opts: PageOptions = {}): string {
  const status = opts.status;
  const footer = [status ? `${status} ${esc(reason(status))}` : '', opts.requestId ? `request id <code>${esc(opts.requestId)}</code>` : '', 'tunn']
    .filter(Boolean)
    .join(' · ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · tunn</title>
<style>${STYLE}</style></head><body>
<main class="${status && status >= 400 ? 'error' : 'ok'}"><div class="card">
<p class="brand"><span class="mark" aria-hidden="true"></span>tunn</p>
${opts.banner ? `<p class="banner" role="alert">${esc(opts.banner)}</p>` : ''}<h1>${esc(title)}</h1>
${body}
</div>
<footer>${footer}</footer></main>
</body></html>
`;
}
