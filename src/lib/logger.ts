import { pino, type Logger } from 'pino';
import { inert, inertJson } from './inert.ts';

export type { Logger };

export interface LoggerOptions {
  /** JSON lines on stdout (for scripts and tests) instead of human-readable lines. */
  json: boolean;
  level?: string;
  /** Where lines go; stdout by default. */
  destination?: NodeJS.WritableStream;
}

/**
 * JSON logs go to stdout as one object per line; in a terminal the same records are printed
 * as short readable lines. Human output of the CLI itself (URLs, request log) is printed by
 * the CLI, not through the logger.
 *
 * Log fields carry what visitors chose (paths, Host, methods): both streams pass every line
 * through the one escaper (lib/inert.ts) at this sink, so no call site can forget it.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.level ?? 'info';
  if (opts.json) {
    const dest = opts.destination ?? pino.destination({ dest: 1, sync: true });
    // JSON escapes C0 controls itself; DEL and C1 are escaped here.
    return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, { write: (line: string) => dest.write(inertJson(line)) });
  }
  const out = opts.destination ?? process.stderr;
  const stream = {
    write(line: string) {
      const rec = JSON.parse(line) as Record<string, unknown>;
      const { level: lv, time: _t, msg, ...rest } = rec;
      const extras = Object.entries(rest)
        .filter(([k]) => k !== 'event')
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      const tag = Number(lv) >= 50 ? 'error' : Number(lv) >= 40 ? 'warn' : '';
      out.write(`tunn: ${tag ? tag + ': ' : ''}${inert(`${String(msg ?? '')}${extras ? '  ' + extras : ''}`)}\n`);
    },
  };
  return pino({ level, base: undefined }, stream);
}

/** A logger that drops everything, for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
