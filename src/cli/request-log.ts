import type { RequestLogEntry } from '../agent/forward.ts';
import type { Refusal } from '../protocol/messages.ts';
import { inert } from '../lib/inert.ts';
import { formatBytes, formatDuration } from './output.ts';

// The agent's request log for a person, like ngrok's: one aligned line per request, the
// ones the target answered and the ones the relay answered itself (refused at the edge,
// target down) alike. In a terminal: status classes coloured and the path cut to the
// terminal's width (read for every line, so resizing takes effect at once). Not a terminal,
// NO_COLOR or --no-color: plain lines.
//
//   15:04:05  GET     200   12.3 ms    1.2 KB  /api/users/42
//   15:04:06  GET     403   bob@x.com not allowed  /admin

export interface LogStyle {
  color: boolean;
  /** Terminal columns; undefined when not a terminal (lines are not cut to a width). */
  columns: number | undefined;
}

/** Colour only on a terminal, never with --no-color (`flag` false), NO_COLOR (any non-empty value) or TERM=dumb. */
export function logStyle(out: { isTTY?: boolean; columns?: number }, env: NodeJS.ProcessEnv, flag: boolean | undefined): LogStyle {
  const tty = out.isTTY === true;
  const color = tty && flag !== false && !env.NO_COLOR && env.TERM !== 'dumb';
  return { color, columns: tty ? out.columns || 80 : undefined };
}

const SGR = { reset: '\x1b[0m', dim: '\x1b[2m', bold: '\x1b[1m', red: '\x1b[31m', green: '\x1b[32m', yellow: '\x1b[33m', cyan: '\x1b[36m', magenta: '\x1b[35m' } as const;

export function paint(s: LogStyle, code: keyof typeof SGR, text: string): string {
  return s.color ? `${SGR[code]}${text}${SGR.reset}` : text;
}

function statusColor(status: number): keyof typeof SGR {
  if (status >= 500) return 'red';
  if (status >= 400) return 'yellow';
  if (status >= 300) return 'cyan';
  if (status >= 200) return 'green';
  return 'magenta';
}

/** Width of time, method and status columns with their gaps: "15:04:05  GET     200  ". */
const LEAD = 8 + 2 + 7 + 1 + 3 + 2;
/** Width of the info column (duration and bytes) with its gap. */
const INFO = 9 + 2 + 9 + 2;
/** Plain lines (not a terminal) cut paths at this length. */
const PLAIN_PATH_MAX = 200;
const MIN_PATH = 12;

function cut(path: string, max: number): string {
  if (path.length <= max) return path;
  return max <= 1 ? '…' : path.slice(0, max - 1) + '…';
}

function line(s: LogStyle, time: Date, method: string, status: number, info: string, infoWidth: number, path: string): string {
  const room = s.columns === undefined ? PLAIN_PATH_MAX : Math.max(MIN_PATH, s.columns - LEAD - Math.max(INFO, infoWidth + 2) - 1);
  const m = inert(method.length > 7 ? method.slice(0, 7) : method.padEnd(7));
  path = inert(path);
  const pad = ' '.repeat(Math.max(2, INFO - infoWidth));
  return `${paint(s, 'dim', time.toTimeString().slice(0, 8))}  ${m} ${paint(s, statusColor(status), String(status).padStart(3))}  ${info}${pad}${cut(path, room)}`;
}

/** A request the target answered. */
export function formatRequest(e: RequestLogEntry, s: LogStyle = { color: false, columns: undefined }): string {
  const info = `${formatDuration(e.durationMs).padStart(9)}  ${formatBytes(e.bytes).padStart(9)}`;
  return line(s, e.time, e.method, e.status, info, info.length, e.path);
}

/** A request the relay answered itself, with who and why. */
export function formatRefusal(r: Refusal, target: string, s: LogStyle = { color: false, columns: undefined }): string {
  const why = inert(describeRefusal(r, target));
  return line(s, new Date(r.at), r.method, r.status, paint(s, r.status >= 500 ? 'red' : 'yellow', why), why.length, r.path);
}

const TARGET_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'nothing listens there',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'DNS lookup failed',
  EMPTY_RESPONSE: 'closed the connection without answering',
};

/** Why, in a few words: "bob@x.com not allowed", "rate limit 100/min per client IP", "target down: …". */
export function describeRefusal(r: Refusal, target: string): string {
  const d = r.detail;
  switch (r.reason) {
    case 'policy':
      return `${r.who ?? 'visitor'} not allowed${d ? ` (${d})` : ''}`;
    case 'ip':
      return `IP ${r.ip} not allowed (--allow-ip)`;
    case 'rate-limit':
      return `rate limit${d ? ` ${d}` : ''} (${r.ip})`;
    case 'basic-auth':
      return `basic auth: ${d ?? 'refused'}`;
    case 'sign-in':
      return d ?? 'not signed in';
    case 'token':
      return d ?? 'invalid token';
    case 'upgrade':
      return d ?? 'upgrade refused';
    case 'target': {
      const code = d ?? '';
      if (/CERT|SSL|TLS|VERIFY|SIGNATURE/.test(code)) return `target ${target}: TLS failed (${code}); --insecure-target skips verifying its certificate`;
      return `target ${target} down: ${TARGET_ERRORS[code] ?? 'not answering'}${code ? ` (${code})` : ''}`;
    }
    case 'unavailable':
      return 'relay could not check access (its log says why)';
    default:
      return d ?? String(r.reason);
  }
}
