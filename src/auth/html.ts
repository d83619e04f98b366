// The sign-in pages use the one page template of src/lib/page.ts (also used by the relay's
// own answers and the gate's refusals). Every interpolated value goes through esc(); pages
// carry no scripts, so the CSP forbids them.

export { esc, PAGE_HEADERS, renderPage as page, type PageOptions } from '../lib/page.ts';
