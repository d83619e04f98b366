import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { localhostAwareLookup } from '../../src/agent/target.ts';
import { formTokenIn } from '../fixtures/identity.ts';

// End-to-end harness: starts the real `tunn` CLI as processes (relay, agents) with inline
// flags on free ports, and talks to them over loopback like a visitor would.

export const ROOT = resolve(import.meta.dirname, '../..');
export const NODE = process.execPath;
// The installed entry point, as users and `npm run bench` measure it (it turns on the compile
// cache; see bin/tunn.js).
export const CLI = join(ROOT, 'bin/tunn.js');

export interface Proc {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: string[];
  /** Resolves with the first JSON line matching `pred` (already seen or future). */
  waitFor(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function startCli(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Proc {
  const child = spawn(NODE, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(line) as Record<string, unknown>;
    } catch {
      obj = { raw: line };
    }
    lines.push(obj);
    for (const w of [...waiters]) {
      if (w.pred(obj)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(obj);
      }
    }
  });
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return {
    child,
    lines,
    stderr,
    exited,
    waitFor(pred, timeoutMs = 15_000) {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for a line; stdout: ${JSON.stringify(lines).slice(-2000)} stderr: ${stderr.join('\n').slice(-2000)}`)), timeoutMs);
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`process exited (${code}) before the line; stderr: ${stderr.join('\n').slice(-2000)}`));
        });
      });
    },
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

export interface RelayHandle {
  proc: Proc;
  dataDir: string;
  domain: string;
  httpsPort: number;
  httpPort: number;
  caPath: string;
  ca: string;
  url: string;
  stop(): Promise<void>;
}

/** Starts `tunn relay --dev` on free ports (or the given ones, for restarts). */
export async function startRelay(opts: { dataDir?: string; httpsPort?: number; httpPort?: number; extra?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<RelayHandle> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'tunn-relay-'));
  const proc = startCli(['relay', '--dev', '--https-port', String(opts.httpsPort ?? 0), '--http-port', String(opts.httpPort ?? 0), '--data-dir', dataDir, '--json', ...(opts.extra ?? [])], { env: opts.env });
  const ready = await proc.waitFor((l) => l.event === 'ready');
  const caPath = String(ready.caPath);
  const httpsPort = Number(ready.httpsPort);
  return {
    proc,
    dataDir,
    domain: String(ready.domain),
    httpsPort,
    httpPort: Number(ready.httpPort),
    caPath,
    ca: readFileSync(caPath, 'utf8'),
    url: `https://${String(ready.domain)}:${httpsPort}`,
    stop: () => proc.kill(),
  };
}

export async function createToken(relay: RelayHandle, email: string): Promise<string> {
  const p = startCli(['relay', 'token', 'create', '--email', email, '--data-dir', relay.dataDir, '--json']);
  const line = await p.waitFor((l) => l.event === 'token');
  await p.exited;
  return String(line.token);
}

export interface AgentHandle {
  proc: Proc;
  url: string;
  urls: string[];
  host: string;
  httpUrl: string;
  stop(): Promise<void>;
}

/** The `ready` line of a `--json` CLI process (a tunnel or `tunn connect`); fails the test with the line it got instead (`fatal`). */
export async function readyOf(proc: Proc, timeoutMs = 30_000): Promise<Record<string, unknown>> {
  const ready = await proc.waitFor((l) => l.event === 'ready' || l.event === 'fatal', timeoutMs);
  assert.equal(ready.event, 'ready', JSON.stringify(ready));
  return ready;
}

export async function startAgent(relay: RelayHandle, token: string, target: string | number, args: string[] = []): Promise<AgentHandle> {
  const proc = startCli([String(target), '--relay', relay.url, '--token', token, '--relay-ca', relay.caPath, '--json', ...args]);
  const ready = await proc.waitFor((l) => l.event === 'ready' || l.event === 'fatal');
  if (ready.event === 'fatal') throw Object.assign(new Error(String(ready.message)), { code: ready.code });
  const urls = ready.urls as string[];
  return { proc, url: String(ready.url), urls, host: String(ready.host), httpUrl: urls.find((u) => u.startsWith('http:'))!, stop: () => proc.kill() };
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

/** A request through the relay, resolving *.localhost to loopback; `ca` makes it HTTPS. */
export function request(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; ca?: string; agent?: http.Agent | false } = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(
      u,
      { method: opts.method ?? 'GET', headers: opts.headers, lookup: localhostAwareLookup as never, ca: opts.ca, agent: opts.agent ?? false },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode!, headers: res.headers, body, text: body.toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Writes a fresh agent token of `email` to `path` (mode 0600: a secret for --token-file, never argv) and returns the path. */
export async function tokenFile(relay: RelayHandle, path: string, email: string): Promise<string> {
  writeFileSync(path, (await createToken(relay, email)) + '\n', { mode: 0o600 });
  return path;
}

/** Listens each server on 127.0.0.1 port 0, one after another. */
export async function listenLoopback(...servers: { listen(port: number, host: string): unknown; once(ev: 'listening', f: () => void): unknown }[]): Promise<void> {
  for (const srv of servers) await new Promise<void>((r) => (srv.listen(0, '127.0.0.1'), srv.once('listening', r)));
}

/**
 * Security: asserts `secret` is in nothing the relay wrote (its log lines and stderr, its /metrics,
 * every file under its data directory: database, WAL, keys, events).
 */
export async function assertRelayNeverSaw(relay: RelayHandle, secret: string): Promise<void> {
  const metrics = await request(`http://${relay.domain}:${relay.httpPort}/metrics`);
  assert.equal(metrics.status, 200);
  const written = [...relay.proc.lines.map((l) => JSON.stringify(l)), ...relay.proc.stderr, metrics.text, ...filesUnder(relay.dataDir)].join('\n');
  assert.ok(!written.includes(secret), 'the marker leaked into the relay’s output, database, events or metrics');
}

/** Every file under `dir`, as text. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(readFileSync(p).toString('latin1'));
  }
  return out;
}

export function tmpDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Signs `email` in with the relay's dev login and continues to `returnUrl` (a tunnel URL) as a
 * visitor would: the consent page asked before the first hand-off to a host, then the hand-off.
 * Returns the relay's session cookie and the tunnel host's.
 */
export async function devSignIn(relay: RelayHandle, email: string, returnUrl: string): Promise<{ relayCookie: string; hostCookie: string }> {
  const form = { 'content-type': 'application/x-www-form-urlencoded', origin: relay.url };
  const login = await request(`${relay.url}/login/dev`, { method: 'POST', ca: relay.ca, headers: form, body: new URLSearchParams({ email, return: returnUrl }).toString() });
  if (login.status !== 302) throw new Error(`dev login answered ${login.status}: ${login.text}`);
  const relayCookie = String(login.headers['set-cookie']![0]).split(';')[0]!;
  const ask = await request(new URL(String(login.headers.location), relay.url).href, { ca: relay.ca, headers: { cookie: relayCookie } });
  if (ask.status !== 200) throw new Error(`the consent page answered ${ask.status}: ${ask.text}`);
  const go = await request(`${relay.url}/login/continue`, { method: 'POST', ca: relay.ca, headers: { ...form, cookie: relayCookie }, body: new URLSearchParams({ return: returnUrl, csrf: formTokenIn(ask.text) }).toString() });
  if (go.status !== 302) throw new Error(`continuing answered ${go.status}: ${go.text}`);
  const handoff = await request(String(go.headers.location));
  if (handoff.status !== 302) throw new Error(`the hand-off answered ${handoff.status}: ${handoff.text}`);
  return { relayCookie, hostCookie: String(handoff.headers['set-cookie']![0]).split(';')[0]! };
}
