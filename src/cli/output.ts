import type { RequestLogEntry } from '../agent/forward.ts';

// Human-readable output of the CLI. With --json the same information goes out as JSON lines.

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

export function formatDuration(ms: number): string {
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** One request-log line, like ngrok's: time, method, path, status, duration, bytes. */
export function formatRequest(e: RequestLogEntry): string {
  const t = e.time.toTimeString().slice(0, 8);
  const path = e.path.length > 60 ? e.path.slice(0, 57) + '...' : e.path;
  return `${t}  ${e.method.padEnd(7)} ${path.padEnd(40)} ${String(e.status).padStart(3)}  ${formatDuration(e.durationMs).padStart(9)}  ${formatBytes(e.bytes).padStart(9)}`;
}

export function printJson(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), ...obj }) + '\n');
}
