import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { esc, PAGE_HEADERS, renderPage } from '../lib/page.ts';

/** The page `tunn dev` serves when no port is given: proof that the tunnel works. */
export async function startDemoServer(): Promise<{ port: number; close(): void }> {
  const server = http.createServer((req, res) => {
    // Long header values (cookies, assertions) wrap inside the table: no horizontal scrolling.
    const rows = Object.entries(req.headers)
      .map(([k, v]) => `<tr><th scope="row"><code>${esc(k)}</code></th><td><code>${esc(String(v))}</code></td></tr>`)
      .join('');
    res.writeHead(200, Object.fromEntries(PAGE_HEADERS));
    res.end(
      renderPage(
        'It works: this page came through a tunn tunnel',
        `<p>This is tunn's built-in demo page, served by the agent on this machine and reached through the relay.
Expose your own service with <code>tunn dev 3000</code>.</p>
<p>Your request: <code>${esc(req.method ?? '')} ${esc(req.url ?? '')}</code></p>
<table><colgroup><col style="width:35%"><col></colgroup><tbody>${rows}</tbody></table>`,
      ),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}
