import type { Duplex } from 'node:stream';
import type { GateDecision, GateRequest } from '../auth/gate.ts';
import { headerValue, wantsUpgrade, type MessageHead } from '../lib/http1.ts';
import { newRequestId } from '../lib/page.ts';
import type { Refusal } from '../protocol/messages.ts';
import type { GatewayOptions } from './gateway.ts';
import { pages, type LocalResponse } from './pages.ts';
import { normalizeHost, originFormTarget } from './request-target.ts';
import type { Tunnel } from './tunnel-directory.ts';

// Where one request head goes, decided per request: its Host (exactly one, well formed), its
// target (origin form from here on), the plain-HTTP hook, the relay's own host, the tunnel
// for the host, and the tunnel's access check. The proxy (http-proxy.ts) carries it out.

export type RequestRoute =
  /** The relay answers itself. `early`: decided before the relay's own host was ruled out. */
  | { kind: 'answer'; response: LocalResponse; tunnel?: Tunnel; early?: true; requestId?: string; refusal?: Pick<Refusal, 'reason' | 'who' | 'detail'> }
  /** The relay's own host serves the connection (its first request only). */
  | { kind: 'own-host' }
  /** Another relay of the cluster holds the tunnel: the connection is carried there (`conn`). */
  | { kind: 'elsewhere'; conn: Duplex }
  /** Forward to the tunnel's agent, with what the access check changes (undefined: it passes unchanged). */
  | { kind: 'forward'; tunnel: Tunnel; allowed: Extract<GateDecision, { kind: 'allow' }> | undefined };

/** The connection a request arrives on, as routing sees it. */
export interface RouteConnection {
  secure: boolean;
  clientIp: string;
  /** No request was routed past the relay's own host yet, and no stream is open. */
  mayHandOver: boolean;
  /** The tunnel the connection is bound to (its first forwarded request's). */
  bound: Tunnel | undefined;
}

const answer = (response: LocalResponse, tunnel?: Tunnel): RequestRoute => ({ kind: 'answer', response, tunnel });
const early = (response: LocalResponse): RequestRoute => ({ kind: 'answer', response, early: true });

/** Routes one request head (its target is rewritten to origin form); a promise only when it must wait. */
export function routeRequest(head: MessageHead, c: RouteConnection, opts: GatewayOptions): RequestRoute | Promise<RequestRoute> {
  const hostHeader = headerValue(head, 'host');
  let hostCount = 0;
  for (const n of head.names) if (n === 'host') hostCount++;
  if (hostCount > 1 || (head.versionMinor === 1 && hostCount === 0)) return early(pages.badRequest('The request needs exactly one Host header.'));
  const host = normalizeHost(hostHeader ?? '');
  if (host === null) return early(pages.badRequest('The Host header is malformed.'));
  // Origin-form only from here on (routing, the gate, the origin all see the same path).
  const target = originFormTarget(head.method, head.target, hostHeader ?? host, c.secure);
  if (!target.ok) return early(pages.badRequest(target.why));
  head.target = target.target;

  const hook = opts.plainHook?.(head, host);
  // A promise only for an ACME HTTP-01 token a relay of the cluster may have presented (read from the database).
  if (hook instanceof Promise) return hook.then((r) => (r ? early(r) : routeHost(head, host, hostHeader, c, opts)));
  if (hook) return early(hook);
  return routeHost(head, host, hostHeader, c, opts);
}

/** Routes a request past the plain-HTTP hook: the relay's own host, the tunnel at `host`, its access check. */
function routeHost(head: MessageHead, host: string, hostHeader: string | undefined, c: RouteConnection, opts: GatewayOptions): RequestRoute | Promise<RequestRoute> {
  if (opts.isRelayHost(host)) {
    // The relay's own server would leave a CONNECT unanswered: tunn is not a forward proxy.
    if (head.method === 'CONNECT') return early(pages.methodNotAllowed(head.method));
    if (c.mayHandOver) return { kind: 'own-host' };
    return early(pages.misdirected());
  }

  const tunnel = opts.directory.get(host);
  if (!tunnel) {
    const elsewhere = c.mayHandOver ? opts.heldElsewhere : undefined;
    if (elsewhere) return elsewhere(host, c.clientIp).then((conn) => (conn ? { kind: 'elsewhere', conn } : notHere(host, opts)));
    return notHere(host, opts);
  }
  // A tls tunnel speaks TLS end to end (426 says so); tcp/udp tunnels have no HTTP at all.
  const kind = tunnel.options.kind ?? 'http';
  if (kind === 'tls') return answer(pages.upgradeRequired(host, tunnel.options.public));
  if (kind !== 'http') return answer(pages.notFound(host));
  if (c.bound && c.bound !== tunnel) return answer(pages.misdirected());
  if (head.method === 'CONNECT') return answer(pages.methodNotAllowed(head.method), tunnel);

  const access = opts.access;
  if (!access || access.passes?.(tunnel)) return { kind: 'forward', tunnel, allowed: undefined };
  // Made only now: a page of the gate shows it (a request forwarded on a public tunnel costs nothing).
  const requestId = newRequestId();
  const req: GateRequest = {
    method: head.method,
    path: head.target,
    host: (hostHeader ?? host).trim().toLowerCase(),
    secure: c.secure,
    clientIp: c.clientIp,
    headers: head.headers.map(([, v], i) => [head.names[i]!, v]),
    upgrade: wantsUpgrade(head),
    requestId,
  };
  const decision = access.check(req, tunnel);
  if (decision instanceof Promise) return decision.then((d) => decided(d, head, tunnel, requestId));
  return decided(decision, head, tunnel, requestId);
}

/** No tunnel at `host` here nor elsewhere: offline if someone holds the name, else not found. */
function notHere(host: string, opts: GatewayOptions): RequestRoute | Promise<RequestRoute> {
  if (!opts.isKnownHost) return answer(pages.notFound(host));
  return opts.isKnownHost(host).then(
    (known) => answer(known ? pages.offline(host) : pages.notFound(host)),
    () => answer(pages.notFound(host)),
  );
}

function decided(d: GateDecision, head: MessageHead, tunnel: Tunnel, requestId: string): RequestRoute {
  if (d.kind === 'allow') return { kind: 'forward', tunnel, allowed: d };
  // A refused request with a body: the connection closes (the body is not read).
  const hasBody = head.headers.some(([k]) => /^(content-length|transfer-encoding)$/i.test(k));
  return { kind: 'answer', response: { status: d.status, headers: d.headers, body: d.body, close: hasBody }, tunnel, requestId, refusal: d.refusal };
}
