import type { LiveTunnel, TunnelControl } from '../api/tunnels.ts';
import type { ConnectionTable } from './live-revocation.ts';
import type { Tunnel, TunnelDirectory } from './tunnel-directory.ts';

// The relay's side of `tunn status` / `tunn stop` (src/api/tunnels.ts): its live tunnels as
// their owner sees them, and closing one the way revocation does (the agent is told why, with
// a fatal error so it does not register again; the tunnel's open connections are cut).

export interface TunnelControlDeps {
  directory: TunnelDirectory;
  gateways: readonly ConnectionTable[];
  urlsFor(host: string): string[];
  /** A tunnel stopped here (metrics, the log). */
  onStopped(t: Tunnel, why: string): void;
}

/** Every control in force on a tunnel, in words. */
export function allowedOf(t: Tunnel): string[] {
  const o = t.options;
  const who = o.public ? ['everyone (public)'] : [...o.allow, `${t.email} (owner)`];
  const rate = o.rateLimit;
  return [
    ...who,
    ...(o.basicAuth ? [`basic auth (user ${o.basicAuth.user})`] : []),
    ...(o.allowIps?.length ? [`from ${o.allowIps.join(', ')}`] : []),
    ...(rate?.perIp !== undefined ? [`${rate.perIp}/min per client`] : []),
    ...(rate?.perTunnel !== undefined ? [`${rate.perTunnel}/min for the tunnel`] : []),
  ];
}

export function statusOf(t: Tunnel, urls: string[]): LiveTunnel {
  return {
    name: t.name,
    host: t.host,
    domain: t.domain,
    url: urls[0]!,
    urls,
    kind: t.options.kind ?? 'http',
    accountId: t.accountId,
    owner: t.email,
    allow: t.options.public ? [] : [...t.options.allow],
    public: !!t.options.public,
    allowed: allowedOf(t),
    agents: new Set(t.sessions.map((s) => s.agentId)).size,
    sessions: t.sessions.length,
    since: new Date(t.since).toISOString(),
    requests: t.metrics.responses.reduce((a, b) => a + b, 0),
    bytesIn: t.metrics.bytesIn,
    bytesOut: t.metrics.bytesOut,
  };
}

export function createTunnelControl(d: TunnelControlDeps): TunnelControl {
  return {
    list: () => d.directory.all().map((t) => statusOf(t, d.urlsFor(t.host))),
    stop(host, why) {
      const t = d.directory.get(host);
      if (!t) return undefined;
      const stopped = statusOf(t, d.urlsFor(t.host));
      for (const s of [...t.sessions]) {
        s.refuse(t.id, 'STOPPED', why);
        d.directory.detachTunnel(s, t.id);
      }
      for (const g of d.gateways) g.cut((c) => c.tunnel === t);
      d.onStopped(t, why);
      return stopped;
    },
  };
}
