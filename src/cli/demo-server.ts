import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { escapeHtml } from '../relay/pages.ts';

/** The page `tunn dev` serves when no port is given: proof that the tunnel works. */
export async function startDemoServer(): Promise<{ port: number; close(): void }> {
  const server = http.createServer((req, res) => {
    const rows = Object.entries(req.headers)
      .map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(String(v))}</td></tr>`)
      .join('');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tunn works</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:8vh auto;padding:0 1rem}td{padding:.1rem .6rem;border-bottom:1px solid #eee;font-family:monospace;font-size:13px}</style></head>
<body><h1>It works: this page came through a tunn tunnel</h1>
<p>This is tunn's built-in demo page, served by the agent on this machine and reached through the relay.
Expose your own service with <code>tunn dev 3000</code>.</p>
<p>Your request: <code>${escapeHtml(req.method ?? '')} ${escapeHtml(req.url ?? '')}</code></p>
<table>${rows}</table></body></html>`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}
