import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Identity } from '../auth/identity.ts';
import { credentialCheck } from './caller.ts';
import type { ApiEnv } from './http.ts';
import { visibleTunnels, type TunnelControl, type TunnelStatus } from './tunnels.ts';

// GET /v1/tunnels/events: server-sent events of the tunnels the caller may see (the same set as
// GET /v1/tunnels), for the console's live Tunnels page. First a `snapshot`, then `up`,
// `updated` (agents, controls or counters changed) and `down`; a `heartbeat` now and then,
// when the credential is checked again: a revoked token or a signed-out session gets `end`
// and the stream closes.
//
// The relay's tunnel list is read every `pollMs` and compared with what this stream last sent,
// so the relay needs no hooks for it (src/relay is being reshaped; the list is in memory).

export interface TunnelEventsOptions {
  /** How often the live list is compared (default 2 s). */
  pollMs?: number;
  /** How often a heartbeat is sent and the credential checked again (default 15 s). */
  heartbeatMs?: number;
}

/** The events of the stream, by name (`event:`), with their JSON `data:`. */
export interface TunnelEvents {
  snapshot: { tunnels: TunnelStatus[] };
  up: { tunnel: TunnelStatus };
  updated: { tunnel: TunnelStatus };
  down: { host: string };
  heartbeat: { at: string };
  end: { reason: string };
}

export function tunnelEventsRoute(identity: Identity, control: () => TunnelControl, opts: TunnelEventsOptions = {}) {
  const pollMs = opts.pollMs ?? 2000;
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  return new Hono<ApiEnv>().get('/', async (c) => {
    const ctl = control();
    const caller = c.get('caller');
    const stillValid = credentialCheck(identity, c);
    // A reverse proxy in front of the relay (nginx) must pass events on as they come.
    c.header('x-accel-buffering', 'no');
    return streamSSE(c, async (stream) => {
      const send = <K extends keyof TunnelEvents>(event: K, data: TunnelEvents[K]) => stream.writeSSE({ event, data: JSON.stringify(data) });
      let last = new Map<string, string>();
      const diff = async () => {
        const now = await visibleTunnels(identity, ctl, caller);
        const next = new Map(now.map((t) => [t.host, JSON.stringify(t)] as const));
        for (const t of now) {
          const before = last.get(t.host);
          if (before === undefined) await send('up', { tunnel: t });
          else if (before !== next.get(t.host)) await send('updated', { tunnel: t });
        }
        for (const host of last.keys()) if (!next.has(host)) await send('down', { host });
        last = next;
      };
      const first = await visibleTunnels(identity, ctl, caller);
      last = new Map(first.map((t) => [t.host, JSON.stringify(t)] as const));
      await send('snapshot', { tunnels: first });
      let done = false;
      let resolveDone!: () => void;
      const finished = new Promise<void>((r) => (resolveDone = r));
      const finish = () => {
        done = true;
        resolveDone();
      };
      stream.onAbort(finish);
      // One step at a time: a slow store never lets two comparisons interleave.
      let busy: Promise<void> = Promise.resolve();
      const step = (work: () => Promise<void>) => {
        busy = busy.then(() => (done ? undefined : work())).catch(() => finish());
      };
      const poll = setInterval(() => step(diff), pollMs);
      const beat = setInterval(
        () =>
          step(async () => {
            if (!(await stillValid())) {
              await send('end', { reason: 'the session or token this stream was opened with was revoked or expired: sign in again' });
              finish();
              return;
            }
            await send('heartbeat', { at: new Date(identity.clock.now()).toISOString() });
          }),
        heartbeatMs,
      );
      try {
        await finished;
      } finally {
        clearInterval(poll);
        clearInterval(beat);
        await busy;
      }
    });
  });
}
