import type { Agent, AgentState } from '../agent/agent.ts';
import type { RefusalReason } from '../protocol/messages.ts';
import { formatSeconds } from '../auth/grants.ts';
import { LiveStatus } from './live-status.ts';
import { describeAccess, printJson } from './output.ts';
import { formatRefusal, formatRequest, logStyle, paint, type LogStyle } from './request-log.ts';

// The agent's life for a person: the tunnel's URL and who may reach it, the request log
// (src/cli/request-log.ts), state changes and notices on stderr, and in a colour terminal a
// live status line under the log (src/cli/live-status.ts). With --json: JSON lines instead.

const DOT: Record<AgentState, keyof typeof STATE_COLOR> = { connecting: 'yellow', online: 'green', reconnecting: 'yellow', stopped: 'red' };
const STATE_COLOR = { green: 'green', yellow: 'yellow', red: 'red' } as const;

/**
 * What the status line counts: requests that reached the target, requests the relay refused
 * (access: policy, sign-in, IP, rate limit, …), and requests that failed because the target did
 * not answer (the relay's 502/504, reason `target`): a target down is not an access refusal.
 */
export class StatusCounts {
  requests = 0;
  refused = 0;
  targetErrors = 0;

  /** One request the relay answered itself, or `count` of them. */
  answeredByRelay(reason: RefusalReason, count = 1): void {
    if (reason === 'target') this.targetErrors += count;
    else this.refused += count;
  }

  /** `● online · 12 requests · 3 refused · 1 target error · Ctrl-C to stop` (target errors only once there is one). */
  line(state: AgentState): string {
    const errors = this.targetErrors > 0 ? ` · ${this.targetErrors} target ${this.targetErrors === 1 ? 'error' : 'errors'}` : '';
    return `● ${state} · ${this.requests} ${this.requests === 1 ? 'request' : 'requests'} · ${this.refused} refused${errors} · Ctrl-C to stop`;
  }
}

/** `color`: false for --no-color. */
export function attachAgentOutput(agent: Agent, json: boolean, extraReady: Record<string, unknown> = {}, pickUrl = (urls: string[]) => urls[0]!, color?: boolean): void {
  // Read per line: the terminal's width follows a resize.
  const style = (): LogStyle => logStyle(process.stdout, process.env, color);
  const err = logStyle(process.stderr, process.env, color);
  const live = new LiveStatus(!json && style().color && err.color ? process.stdout : undefined);
  const out = (text: string): void => live.print(process.stdout, text);
  const note = (text: string): void => live.print(process.stderr, `${paint(err, 'dim', 'tunn:')} ${text}\n`);
  let state: { name: AgentState; detail: string } = { name: 'connecting', detail: 'connecting' };
  const counts = new StatusCounts();
  const redraw = (): void => {
    if (!live.enabled) return;
    const text = counts.line(state.name);
    live.set(`${paint(err, DOT[state.name], '●')}${text.slice(1)}`, text.length);
  };
  process.once('exit', () => live.end());

  agent.on('state', (name, detail) => {
    state = { name, detail };
    if (json) printJson({ event: 'state', state: name, detail });
    else if (name === 'stopped') {
      live.end();
      process.stderr.write(`${paint(err, 'dim', 'tunn:')} ${detail}\n`);
    } else {
      note(name === 'online' ? paint(err, 'green', detail) : detail);
      redraw();
    }
  });
  agent.on('ready', (t) => {
    const url = pickUrl(t.urls);
    if (json) printJson({ event: 'ready', url, urls: t.urls, name: t.name, host: t.host, target: t.target.display, ...(t.port !== undefined ? { port: t.port } : {}), ...extraReady });
    else {
      const who = describeAccess(agent.config.tunnels[0]!, formatSeconds);
      const inspect = extraReady.inspectUrl ? `   Inspect: ${String(extraReady.inspectUrl)}\n` : '';
      out(`\n🔗 ${paint(style(), 'bold', url)} → ${t.target.display}\n   Allowed: ${who}\n${inspect}\n`);
    }
  });
  agent.on('request', (e) => {
    counts.requests++;
    if (json) printJson({ event: 'request', tunnel: e.tunnel, method: e.method, path: e.path, status: e.status, durationMs: Math.round(e.durationMs * 1000) / 1000, bytes: e.bytes });
    else {
      out(formatRequest(e, style()) + '\n');
      redraw();
    }
  });
  agent.on('refused', (r) => {
    counts.answeredByRelay(r.reason);
    if (json) printJson({ event: 'request', tunnel: r.tunnel, method: r.method, path: r.path, status: r.status, by: 'relay', reason: r.reason, ...(r.who ? { who: r.who } : {}), ip: r.ip, ...(r.detail ? { detail: r.detail } : {}) });
    else {
      out(formatRefusal(r, r.target, style()) + '\n');
      redraw();
    }
  });
  agent.on('refusedMore', (x) => {
    for (const m of x.more) counts.answeredByRelay(m.reason, m.count);
    const message = `the relay answered ${x.count} more requests for ${x.tunnel} itself in that second: ${x.more.map((m) => `${m.count} × ${m.status} ${m.reason}`).join(', ')}`;
    if (json) printJson({ event: 'notice', message, tunnel: x.tunnel, refused: x.more });
    else {
      note(message);
      redraw();
    }
  });
  agent.on('notice', (m) => {
    if (json) printJson({ event: 'notice', message: m });
    else note(m);
  });
  agent.on('fatal', (e) => {
    if (json) printJson({ event: 'fatal', code: e.code, message: e.message });
    else {
      live.end();
      process.stderr.write(`${paint(err, 'dim', 'tunn:')} ${paint(err, 'red', 'error:')} ${e.message}\n`);
    }
    process.exitCode = 1;
  });
}
