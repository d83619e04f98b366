// Minimal server-rendered pages (login, 403, device confirmation, notices). Every
// interpolated value goes through esc(); pages carry no scripts, so the CSP forbids them.
// Referrer-Policy is same-origin, not no-referrer: under no-referrer a browser sends
// `Origin: null` with the page's own form posts (Fetch, "append a request Origin header"),
// and csrf.ts refuses null. Other sites still get no Referer (no code or return URL leaks).

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export const PAGE_HEADERS: [string, string][] = [
  ['content-type', 'text/html; charset=utf-8'],
  ['cache-control', 'no-store'],
  ['content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'"],
  ['x-content-type-options', 'nosniff'],
  ['referrer-policy', 'same-origin'],
];

/** A whole page; `body` is trusted HTML built with esc(). */
export function page(title: string, body: string, opts: { banner?: string } = {}): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · tunn</title>
<style>
body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}
h1{font-size:1.4rem}.banner{background:#b00020;color:#fff;padding:.6rem .8rem;border-radius:.3rem;font-weight:600}
form{margin:1rem 0}input[type=email]{width:100%;padding:.5rem;box-sizing:border-box}
button,.button{display:inline-block;padding:.5rem 1rem;margin:.25rem 0;border:1px solid #444;border-radius:.3rem;background:#f4f4f4;color:#1a1a1a;text-decoration:none;cursor:pointer}
.code{font-family:ui-monospace,monospace;font-size:1.6rem;letter-spacing:.2rem}.muted{color:#666;font-size:.9rem}
</style></head><body>
${opts.banner ? `<p class="banner" role="alert">${esc(opts.banner)}</p>` : ''}<h1>${esc(title)}</h1>
${body}
</body></html>
`;
}
