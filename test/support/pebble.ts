import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createCa, issueLeaf } from '../../src/certs/dev-ca.ts';
import { freePort } from './ports.ts';

// A real Pebble (Debian package `pebble`) per test file. Its HTTPS certificate comes from a
// throwaway dev CA (`httpsCaPem`, what the ACME client must trust); its issuing root is new
// on every start and is fetched from the management port (`rootPem`, what TLS clients of the
// issued certificates must trust).

export interface PebbleOptions {
  /** host:port of the DNS resolver Pebble's VA asks (the test's forwarder). */
  dnsServer: string;
  /** Port the VA connects to for http-01 (where the test's HTTP responder listens). */
  httpPort?: number;
  /** Port the VA connects to for tls-alpn-01. */
  tlsPort?: number;
  /** Lifetime of issued certificates in seconds (Pebble's default is 5 years). */
  validitySeconds?: number;
}

export interface Pebble {
  readonly directoryUrl: string;
  /** The CA that signed Pebble's own HTTPS certificate. */
  readonly httpsCaPem: string;
  /** Pebble's current issuing root (changes on restart). */
  rootPem: string;
  /** Stops the process (the ports stay reserved for start()). */
  stop(): Promise<void>;
  /** Starts it again on the same ports (a CA coming back after an outage). */
  start(): Promise<void>;
}

export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-pebble-'));
  const ca = await createCa('tunn test Pebble HTTPS CA');
  const leaf = await issueLeaf(ca, ['127.0.0.1', 'localhost']);
  writeFileSync(join(dir, 'cert.pem'), leaf.certPem);
  writeFileSync(join(dir, 'key.pem'), leaf.keyPem);
  const port = await freePort();
  const mgmt = await freePort();
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${port}`,
        managementListenAddress: `127.0.0.1:${mgmt}`,
        certificate: join(dir, 'cert.pem'),
        privateKey: join(dir, 'key.pem'),
        httpPort: opts.httpPort ?? 5002,
        tlsPort: opts.tlsPort ?? 5001,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        certificateValidityPeriod: opts.validitySeconds ?? 90 * 86400,
      },
    }),
  );
  let child: ChildProcess | undefined;
  let output = '';
  const get = (url: string) =>
    new Promise<string>((resolve, reject) => {
      const req = request(url, { ca: ca.certPem, timeout: 2000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });

  const pebble: Pebble = {
    directoryUrl: `https://127.0.0.1:${port}/dir`,
    httpsCaPem: ca.certPem,
    rootPem: '',
    async start() {
      output = '';
      child = spawn('/usr/bin/pebble', ['-config', join(dir, 'config.json'), '-dnsserver', opts.dnsServer], {
        env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_AUTHZREUSE: '0', PEBBLE_WFE_NONCEREJECT: '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
      for (let i = 0; ; i++) {
        if (child.exitCode !== null) throw new Error(`pebble exited at start:\n${output}`);
        try {
          await get(pebble.directoryUrl);
          pebble.rootPem = await get(`https://127.0.0.1:${mgmt}/roots/0`);
          return;
        } catch (err) {
          if (i > 100) throw new Error(`pebble did not start: ${(err as Error).message}\n${output}`);
          await sleep(50);
        }
      }
    },
    async stop() {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null) return;
      c.kill('SIGTERM');
      await once(c, 'exit');
    },
  };
  await pebble.start();
  process.once('exit', () => {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  return pebble;
}
