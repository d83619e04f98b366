import { checkBasicAuth } from './basic-auth.ts';
import { serializeSessionCookie } from './cookies.ts';
import { CALLBACK_PATH } from './handoff.ts';
import { LOGOUT_PATH, tunnelLogout, type LogoutContext } from './tunnel-logout.ts';
import type { RecordEvent } from './events.ts';
import type { GateDecision, GateRefusal, GateRequest, TunnelPolicy } from './gate.ts';
import { esc, PAGE_HEADERS, page } from './html.ts';
import type { RateLimiter } from './rate-limit.ts';
import { safePath } from './return-url.ts';

// The steps of the gate that need no store: request-head helpers, the answers it gives
// (JSON for API clients, a page for browsers, redirects), rate limits, basic auth and the
// sign-in redirect. The relay's Gate (gate.ts) and the agent's gate for TLS that ends at the
// agent (src/agent/tls/agent-gate.ts) both run these, so a visitor meets the same rules and
// the same words wherever TLS ends.

/** What of a tunnel's policy the store-free steps read. */
export type EdgeLimits = Pick<TunnelPolicy, 'tunnelId' | 'basicAuth' | 'rateLimit'> & { ownerAccountId?: string };

/** Records a security event (the relay's EventLog; the agent reports or drops them). */
export type RecordSecurityEvent = (e: RecordEvent) => void;

export function header(req: GateRequest, name: string): string | undefined {
  for (const [n, v] of req.headers) if (n === name) return v;
  return undefined;
}

export function cookieLine(req: GateRequest): string | undefined {
  const parts: string[] = [];
  for (const [n, v] of req.headers) if (n === 'cookie') parts.push(v);
  return parts.length ? parts.join('; ') : undefined;
}

export function refused(d: GateDecision, refusal: GateRefusal): GateDecision {
  return d.kind === 'respond' ? { ...d, refusal } : d;
}

export function json(status: number, code: string, message: string, extra: [string, string][] = []): GateDecision {
  return { kind: 'respond', status, headers: [['content-type', 'application/json'], ['cache-control', 'no-store'], ...extra], body: JSON.stringify({ error: { code, message } }) };
}

export function html(req: GateRequest, status: number, title: string, body: string, extra: [string, string][] = []): GateDecision {
  return { kind: 'respond', status, headers: [...PAGE_HEADERS, ...extra], body: page(title, body, { status, requestId: req.requestId }) };
}

/**
 * A refusal in the form the client reads: a page for a browser (Accept mentions text/html,
 * any method: a refused form post shows a page too), JSON for everything else.
 */
export function refuse(req: GateRequest, status: number, code: string, message: string, view: { title: string; body: string }, extra: [string, string][] = []): GateDecision {
  if (acceptsHtml(req)) return html(req, status, view.title, view.body, extra);
  return json(status, code, message, extra);
}

export function redirect(location: string, extra: [string, string][] = []): GateDecision {
  return { kind: 'respond', status: 302, headers: [['location', location], ['cache-control', 'no-store'], ...extra], body: '' };
}

export function splitTarget(target: string): [string, string?] {
  const i = target.indexOf('?');
  return i < 0 ? [target] : [target.slice(0, i), target.slice(i + 1)];
}

export function acceptsHtml(req: GateRequest): boolean {
  return (header(req, 'accept') ?? '').includes('text/html');
}

/** GET or HEAD, not an upgrade, no Authorization, Accept mentions text/html: sent to sign in rather than given a 401. */
export function isBrowser(req: GateRequest): boolean {
  if (req.upgrade || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
  if (header(req, 'authorization')) return false;
  return (header(req, 'accept') ?? '').includes('text/html');
}

/** 429 when a per-IP or per-tunnel limit is reached, else undefined. */
export function rateLimitStep(req: GateRequest, t: EdgeLimits, limiter: RateLimiter, record: RecordSecurityEvent): GateDecision | undefined {
  const rl = t.rateLimit;
  if (!rl) return undefined;
  const checks: [string, number | undefined, string][] = [
    [`ip\0${t.tunnelId}\0${req.clientIp}`, rl.perIp, 'client IP'],
    [`tunnel\0${t.tunnelId}`, rl.perTunnel, 'tunnel'],
  ];
  for (const [key, limit, what] of checks) {
    if (!limit) continue;
    const r = limiter.take(key, limit);
    if (!r.ok) {
      record({ kind: 'rate_limited', ip: req.clientIp, tunnel: t.tunnelId, accountId: t.ownerAccountId, detail: `per ${what}: ${limit}/min` });
      return refused(refuse(req, 429, 'RATE_LIMITED', `too many requests (limit per ${what}: ${limit} per minute); retry in ${r.retryAfterSeconds} s`, {
        title: 'Too many requests',
        body: `<p>This tunnel accepts at most ${limit} request${limit === 1 ? "" : "s"} a minute per ${what}, and that limit was reached.</p><p>Wait ${r.retryAfterSeconds} s, then reload the page.</p>`,
      }, [['retry-after', String(r.retryAfterSeconds)]]), { reason: 'rate-limit', detail: `${limit}/min per ${what}` });
    }
  }
  return undefined;
}

/** 401 asking for the tunnel's password when `t.basicAuth` is set and the request lacks it, else undefined. */
export function basicAuthStep(req: GateRequest, t: EdgeLimits, record: RecordSecurityEvent): GateDecision | undefined {
  if (!t.basicAuth) return undefined;
  const authz = header(req, 'authorization');
  if (checkBasicAuth(authz, t.basicAuth)) return undefined;
  if (authz) record({ kind: 'basic_auth_failed', ip: req.clientIp, tunnel: t.tunnelId, accountId: t.ownerAccountId });
  return refused(refuse(req, 401, 'AUTH_REQUIRED', 'this tunnel needs a user name and password (HTTP basic auth)', {
    title: 'This tunnel needs a password',
    body: `<p>${authz ? 'The user name or password was not right.' : 'The owner protected this tunnel with a user name and password.'}</p><p>Reload the page to be asked again, and enter the credentials the owner of this tunnel gave you.</p>`,
  }, [['www-authenticate', 'Basic realm="tunn", charset="UTF-8"']]), { reason: 'basic-auth', detail: authz ? 'wrong user or password' : 'no password given' });
}

/**
 * The relay's login URL that brings the visitor back to `target` on this host. The relay
 * checks the return URL again (return-url.ts); a path it would refuse ("//x", "/\x", an
 * absolute-form target) comes back as this host's root instead.
 */
export function loginUrl(relay: URL, req: GateRequest, target: string): string {
  const back = `${req.secure ? 'https' : 'http'}://${req.host}${safePath(target) ?? '/'}`;
  return `${relay.origin}/login?return=${encodeURIComponent(back)}`;
}

/** No identity: a browser goes to the relay's login, anything else gets 401 saying how to sign in. */
export function signIn(relay: URL, req: GateRequest, browser: boolean, extra: [string, string][]): GateDecision {
  if (browser) return redirect(loginUrl(relay, req, req.path), extra);
  return json(401, 'AUTH_REQUIRED', 'sign in first: open this URL in a browser, or send Authorization: Bearer <token> (create one with `tunn token create`)', [['www-authenticate', 'Bearer realm="tunn"'], ...extra]);
}

/** 503: the decision could not be made, so no one is let in (fail closed). `log` names where the cause is logged. */
export function unavailable(req: GateRequest, log: string, database = false): GateDecision {
  if (database) {
    return refused(refuse(req, 503, 'UNAVAILABLE', 'the relay cannot reach its database to check who you are; try again shortly', {
      title: 'Sign-in cannot be checked right now',
      body: `<p>The relay cannot reach its database to check who you are, so it lets no one in to this tunnel for the moment.</p><p>Try again shortly: the relay reconnects by itself. If this persists, tell the operator of this relay: ${esc(log === 'the relay log' ? 'the relay’s log' : log)} has the details.</p>`,
    }, [['retry-after', '5']]), { reason: 'unavailable', detail: `the database is unreachable (see ${log})` });
  }
  return refused(refuse(req, 503, 'UNAVAILABLE', 'tunn could not check access to this tunnel right now; try again shortly', {
    title: 'Access cannot be checked right now',
    body: `<p>tunn could not check who may reach this tunnel, so it lets no one in for the moment.</p><p>Try again in a few seconds. If this persists, tell the owner of this tunnel: ${esc(log === 'the relay log' ? 'the relay’s log' : log)} has the details.</p>`,
  }, [['retry-after', '5']]), { reason: 'unavailable', detail: `access could not be checked (see ${log})` });
}

export interface OwnPathContext extends LogoutContext {
  /** Exchanges a hand-off code for this host's session; undefined when it is not valid here. */
  redeem(code: string | undefined): Promise<{ cookieValue: string; expiresAt: number; returnPath: string } | undefined>;
  now: number;
  onBadCode?: () => void;
}

/** tunn's own paths on a tunnel host: the hand-off callback (GET) and /.tunn/logout (tunnel-logout.ts). */
export async function ownPathStep(req: GateRequest, pathname: string, q: URLSearchParams, ctx: OwnPathContext): Promise<GateDecision> {
  if (pathname === LOGOUT_PATH) {
    if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST') return json(405, 'INVALID_INPUT', `${pathname} answers GET (a sign-out form) and POST (from that form)`, [['allow', 'GET, HEAD, POST']]);
    return tunnelLogout(req, q, ctx);
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, 'INVALID_INPUT', `${pathname} only answers GET`, [['allow', 'GET, HEAD']]);
  if (pathname === CALLBACK_PATH) {
    const done = await ctx.redeem(q.get('code') ?? undefined);
    if (!done) {
      ctx.onBadCode?.();
      return html(req, 400, 'This sign-in link is no longer valid', `<p>It expired or was already used. Sign-in links are good once, for a few seconds.</p><p><a class="button" href="${esc(ctx.loginUrl)}">Sign in again</a></p>`);
    }
    return redirect(done.returnPath, [['set-cookie', serializeSessionCookie(req.secure, done.cookieValue, (done.expiresAt - ctx.now) / 1000)]]);
  }
  return json(404, 'NOT_FOUND', `${pathname} is not a tunn path`);
}
