import { chromium, type Browser } from 'playwright-core';

// Headless Debian Chromium driven by playwright-core, for visitor-path tests. Every host
// name resolves to 127.0.0.1 (--host-resolver-rules), so tests use realistic names such as
// grafana.tunn.localhost:PORT or custom.example.test:PORT while all listeners stay on
// loopback; the port and the Host header are kept as typed.

export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--host-resolver-rules=MAP * 127.0.0.1',
];

/**
 * Launches Chromium with its own throwaway profile. `extraArgs` adds flags (for instance
 * `--ignore-certificate-errors-spki-list=<b64 sha256 SPKI>` to trust a test leaf); `env`
 * can point HOME at a directory whose NSS db trusts a per-run CA.
 */
export async function launchBrowser(opts: { extraArgs?: string[]; env?: Record<string, string> } = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...CHROMIUM_ARGS, ...(opts.extraArgs ?? [])],
    ...(opts.env ? { env: { ...process.env, ...opts.env } as Record<string, string> } : {}),
  });
}
