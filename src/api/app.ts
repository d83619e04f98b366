import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Identity } from '../auth/identity.ts';
import { TunnError } from '../lib/errors.ts';
import type { Logger } from '../lib/logger.ts';
import { newRequestId, REQUEST_ID_HEADER } from '../lib/page.ts';
import type { ClusterStatus } from '../cluster/status.ts';
import { clusterRoutes } from './cluster.ts';
import { consoleRoutes } from './console.ts';
import { devicePageRoutes, deviceApiRoutes } from './device.ts';
import { requireCaller } from './caller.ts';
import { certRoutes, type AgentCertReport } from './certificates.ts';
import { domainRoutes, type DomainApiOptions } from './domains.ts';
import { eventRoutes } from './events.ts';
import { grantRoutes } from './grants.ts';
import { groupRoutes } from './groups.ts';
import { errorBody, statusOf, type ApiEnv } from './http.ts';
import { loginRoutes } from './login.ts';
import { render } from './pages.ts';
import { sessionRoutes } from './session.ts';
import { revokeRoute, tokenRoutes } from './tokens.ts';
import type { TunnelEventsOptions } from './tunnel-events.ts';
import { tunnelRoutes, type TunnelControl } from './tunnels.ts';

// The relay's own host: /v1 (JSON API for the CLI and the web console), the login pages, the
// web console's files (console.ts) and /.well-known/jwks.json. The relay calls
// app.fetch(request, { clientIp }) for every request whose Host is its own domain; tests call
// app.request().
//
// The typed client: `createApiClient(relayUrl)` (src/api/client.ts), `hc<ApiApp>` underneath;
// the CLI and the web console both use it.

export interface ApiExtras {
  /** Custom domains and certificates (src/domains/setup.ts); without: the relay's host name, no certificates. */
  domains?: DomainApiOptions;
  /** Where answers that are not a success are logged with their request id. */
  logger?: Logger;
  /** The relay's live tunnels (`tunn status`, `tunn stop`, the console); without: /v1/tunnels answers 404. */
  tunnels?: TunnelControl;
  /** Names whose TLS ends at agents, as their agents report them (`tunn cert list`, /v1/certificates). */
  agentCerts?: () => AgentCertReport[];
  /** Timing of GET /v1/tunnels/events (tests shorten it). */
  tunnelEvents?: TunnelEventsOptions;
  /** A relay of a cluster: its nodes and leases (GET /v1/cluster, admins); without: 404. */
  clusterStatus?: () => Promise<ClusterStatus>;
}

const MAX_BODY = 1024 * 1024;

export function createApiApp(identity: Identity, extras: ApiExtras = {}) {
  const domains = extras.domains ?? { relayDomain: identity.relayUrl.hostname, strict: false };
  const app = new Hono<ApiEnv>()
    // One id per request: shown in the page's footer, sent as Tunn-Request-Id, and in the log
    // line of every answer that is not a success (the one a visitor would quote).
    .use(async (c, next) => {
      const reqId = newRequestId();
      c.set('requestId', reqId);
      await next();
      c.header(REQUEST_ID_HEADER, reqId);
      if (c.res.status >= 400) extras.logger?.info({ reqId, status: c.res.status, host: c.req.header('host'), method: c.req.method, path: c.req.path }, 'answered by the relay');
    })
    // No /v1 body is large (the biggest: a group's 1000 emails); a larger one is refused before it is read.
    .use('/v1/*', bodyLimit({ maxSize: MAX_BODY, onError: (c) => c.json(errorBody(new TunnError('INVALID_INPUT', `the request body is larger than ${MAX_BODY / 1024} KiB`)), 413) }))
    .get('/.well-known/jwks.json', (c) => c.json(identity.tokens.jwks(), 200, { 'cache-control': 'public, max-age=300' }))
    // No other origin may read /v1 (the console is same-origin): preflights are refused, and no
    // answer carries Access-Control-Allow-*.
    .options('/v1/*', (c) => c.json(errorBody(new TunnError('FORBIDDEN', 'the tunn API does not answer cross-origin requests: call it from the console on this relay, or from a script with a token')), 403))
    .get('/v1/me', requireCaller(identity), async (c) => {
      const caller = c.get('caller');
      // The IdP groups the relay knows for the caller (`tunn whoami`); only when a source is configured.
      const idp = identity.idpGroups.enabled ? await identity.idpGroups.knownFor(caller.accountId, caller.email) : undefined;
      return c.json({ accountId: caller.accountId, email: caller.email, tokenId: caller.via === 'token' ? caller.jti : null, ...(idp ? { idpGroups: idp.groups, idpProblems: idp.problems } : {}) });
    })
    .route('/v1/session', sessionRoutes(identity))
    .route('/v1/tunnels', tunnelRoutes(identity, extras.tunnels, extras.tunnelEvents))
    .route('/v1/groups', groupRoutes(identity))
    .route('/v1/grants', grantRoutes(identity))
    .route('/v1/tokens', tokenRoutes(identity))
    .route('/v1/auth/token/revoke', revokeRoute(identity))
    .route('/v1/auth/device', deviceApiRoutes(identity))
    .route('/v1/events', eventRoutes(identity))
    .route('/v1/cluster', clusterRoutes(identity, extras.clusterStatus))
    .route('/v1/domains', domainRoutes(identity, domains))
    .route('/', certRoutes(identity, domains, extras.agentCerts))
    .route('/', loginRoutes(identity))
    .route('/', devicePageRoutes(identity));
  // The web console's pages and files (outside the typed chain: not part of the client's API).
  app.route('/', consoleRoutes({ relayUrl: identity.relayUrl }));

  app.notFound((c) => {
    if (c.req.path.startsWith('/v1/')) return c.json(errorBody(new TunnError('NOT_FOUND', `no such endpoint: ${c.req.method} ${c.req.path}`)), 404);
    return render(c, 404, 'Not found', '<p>There is nothing here. <a href="/login">Sign in</a></p>');
  });
  app.onError((err, c) => {
    const status = statusOf(err);
    if (status >= 500) identity.options.onError?.(err);
    if (!c.req.path.startsWith('/v1/') && !c.req.path.startsWith('/.well-known/')) {
      return render(c, status, 'Something went wrong', `<p>${status >= 500 ? 'The relay failed to handle this request.' : String(errorBody(err).error.message).replace(/[<>&"']/g, '')}</p>`);
    }
    const headers: Record<string, string> = {};
    if (status === 401) headers['www-authenticate'] = 'Bearer realm="tunn"';
    return c.json(errorBody(err), status, headers);
  });
  return app;
}

export type ApiApp = ReturnType<typeof createApiApp>;
