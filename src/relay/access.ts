import type { TunnelPolicy } from '../auth/gate.ts';
import type { Identity } from '../auth/identity.ts';
import type { Principal } from '../auth/revocation.ts';
import type { TunnelOptions } from '../protocol/messages.ts';
import type { AccessCheck } from './gateway.ts';
import type { Tunnel } from './tunnel-directory.ts';

// The relay's access decisions on a tunnel, asked of identity: per request (the gateway) and
// again for live connections (revocation). One policy object per options object, so the
// caches identity keys on it hold while a tunnel's registration does not change.

export interface TunnelAccess {
  /** The per-request check the gateway runs. */
  readonly check: AccessCheck;
  /** Whether `who` may still use `t` (live revocation asks this of open connections). */
  allows(t: Tunnel, who: Principal): Promise<boolean>;
  /** The tunnel's policy as identity sees it (the decision point for agent-terminated TLS asks with it). */
  policyOf(t: Tunnel): TunnelPolicy;
}

/** A public tunnel without edge controls: every request passes unchanged (no identity involved). */
function open(o: TunnelOptions): boolean {
  return !!o.public && !o.basicAuth && !o.allowIps?.length && !o.rateLimit;
}

/** `identity()`: undefined while the relay is starting (requests to private tunnels then get 503). */
export function createTunnelAccess(identity: () => Identity | undefined): TunnelAccess {
  const policies = new WeakMap<TunnelOptions, TunnelPolicy>();
  const policyOf = (t: Tunnel): TunnelPolicy => {
    const o = t.options;
    let p = policies.get(o);
    if (!p) {
      // With --for the -a entries are grants of this registration (src/auth/grants.ts), not lasting entries.
      const grantRef = o.grantFor?.ref;
      p = { tunnelId: t.host, host: t.host, grantRef, ownerAccountId: t.accountId, ownerEmail: t.email, allow: grantRef ? [] : o.allow, public: o.public, basicAuth: o.basicAuth, allowIps: o.allowIps, rateLimit: o.rateLimit };
      policies.set(o, p);
    }
    return p;
  };
  return {
    policyOf,
    check: {
      passes: (t) => open(t.options),
      check: (req, t) => {
        if (open(t.options)) return { kind: 'allow', setHeaders: [], removeHeaders: [] };
        const id = identity();
        if (!id) return { kind: 'respond', status: 503, headers: [['Retry-After', '1']], body: 'the relay is starting\n' };
        return id.gate.check(req, policyOf(t));
      },
    },
    allows: async (t, who) => {
      const id = identity();
      if (!id) return true;
      const idpGroups = () => id.idpGroups.lookup({ email: who.email, rootSessionId: who.via === 'session' ? who.rootSessionId : undefined, accountId: t.accountId });
      return id.policy.allows(policyOf(t), { email: who.email, idpGroups });
    },
  };
}
