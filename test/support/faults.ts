import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localhostAwareLookup } from '../../src/agent/target.ts';

// Helpers for the fault matrix (test/e2e/faults.test.ts): a visitor request that cannot hang
// unnoticed, a steady load that counts every failure, a small filesystem that can be filled,
// and half-sent request heads.

export interface Answer {
  status: number;
  text: string;
  headers: http.IncomingHttpHeaders;
}

/**
 * One plain-HTTP request on a new connection that must be answered within `withinMs` (a
 * generous ceiling: it tells "the relay answered" from "the visitor hangs", not a latency).
 */
export function visit(url: string, opts: { withinMs?: number; headers?: Record<string, string>; method?: string; agent?: http.Agent } = {}): Promise<Answer> {
  const within = opts.withinMs ?? 20_000;
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: opts.agent ?? false, lookup: localhostAwareLookup as never }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`${url}: no complete answer within ${within} ms (the visitor would hang)`));
    }, within);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

export interface Load {
  /** Requests answered as expected. */
  readonly ok: number;
  /** Every other outcome, as text (status and body, or the error). */
  readonly failures: string[];
  stop(): Promise<void>;
}

/**
 * `workers` loops of keep-alive requests to `url` until stopped; each answer must be a 200
 * whose body passes `check`.
 */
export function steadyLoad(url: string, workers: number, check: (body: string) => boolean): Load {
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const loop = async (w: number): Promise<void> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; running; i++) {
      try {
        const r = await visit(`${url}?w=${w}&i=${i}`, { agent });
        if (r.status === 200 && check(r.text)) ok++;
        else failures.push(`${r.status} ${r.text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').slice(0, 200)}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    agent.destroy();
  };
  const done = Promise.all(Array.from({ length: workers }, (_, w) => loop(w)));
  return {
    get ok() {
      return ok;
    },
    failures,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

export interface SmallFs {
  path: string;
  /** Free bytes left on it. */
  free(): number;
  remove(): void;
}

/**
 * A tmpfs of `bytes` mounted on a new directory, so a test can fill it up (ENOSPC). Returns a
 * reason string instead when this machine does not let the test mount one (not root, or a
 * container without CAP_SYS_ADMIN).
 */
export function mountSmallFs(bytes: number): SmallFs | string {
  const path = mkdtempSync(join(tmpdir(), 'tunn-fullfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', path], { stdio: 'pipe' });
  } catch (err) {
    rmSync(path, { recursive: true, force: true });
    const e = err as Error & { stderr?: Buffer };
    return `cannot mount a small tmpfs here (${(e.stderr?.toString() || e.message).trim()}); the disk-full test needs root with CAP_SYS_ADMIN`;
  }
  return {
    path,
    free: () => {
      const s = statfsSync(path);
      return s.bavail * s.bsize;
    },
    remove: () => {
      try {
        execFileSync('umount', ['-l', path], { stdio: 'ignore' });
      } catch {
        // already unmounted
      }
      rmSync(path, { recursive: true, force: true });
    },
  };
}

export interface HalfHead {
  socket: net.Socket;
  /** What the relay sent back before closing (empty while it holds the connection open). */
  received(): string;
  closed: Promise<void>;
}

/** Opens a connection and sends a request head without its final empty line (slowloris). */
export function halfHead(port: number, host: string): Promise<HalfHead> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    let connected = false;
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.on('error', (err) => {
      if (!connected) reject(err);
    });
    socket.once('connect', () => {
      connected = true;
      socket.write(`GET /slow HTTP/1.1\r\nHost: ${host}\r\nX-Slow: 1\r\n`, () => resolve({ socket, received: () => got, closed }));
    });
  });
}

/** A connection to `port` that sends nothing (resolves once connected). */
export function silentConnection(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('error', () => {});
    socket.once('connect', () => resolve(socket));
    socket.once('close', () => reject(new Error('closed before it connected')));
  });
}
