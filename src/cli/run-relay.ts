import { onShutdown } from './shutdown.ts';
import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fromEnv, fromFile, relayCrossChecks, relayDefaults, relaySchema, resolveConfig, type RelayOptions } from '../config/config.ts';
import { systemClock } from '../lib/clock.ts';
import { errorMessage, TunnError } from '../lib/errors.ts';
import { createLogger, type Logger } from '../lib/logger.ts';
import { dataDirWarning } from '../lib/private-files.ts';
import { releaseStartupMemory } from '../lib/v8-tuning.ts';
import { domainByName } from '../domains/records.ts';
import { createCustomDomains, parseAcmeChallenges, parsePublicIps, type CustomDomains } from '../domains/setup.ts';
import { LdapDirectory } from '../auth/ldap.ts';
import { parsePortRange, type PortRange } from '../lib/port-range.ts';
import type { KindsConfig } from '../relay/relay-config.ts';
import { Relay, type RelayConfig, type RelayInfo, type RelayParts } from '../relay/relay.ts';
import { dnsProviderFrom } from './dns-check.ts';
import { checkLdapAtStart, ldapDirectoryFrom } from './ldap-config.ts';
import { testClockFrom } from './test-clock.ts';
import { tunnVersion } from './suggest.ts';

export function relayOptionsFrom(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): RelayOptions {
  const envLayer = fromEnv(Object.keys(relaySchema.shape), env);
  const { config, ...rest } = flags;
  const fileLayer = fromFile(config as string | undefined);
  // --dev changes the defaults, so find it first, in the same order of precedence.
  const truthy = (v: unknown): boolean | undefined => (v === undefined ? undefined : v === true || ['1', 'true', 'yes', 'on'].includes(String(v)));
  const dev = truthy(rest.dev) ?? truthy(envLayer.dev) ?? truthy(fileLayer.dev) ?? false;
  return resolveConfig(relaySchema, [relayDefaults(dev), fileLayer, envLayer, rest], relayCrossChecks);
}

export function relayConfigFrom(o: RelayOptions): RelayConfig {
  const dataDir = resolve(o.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return {
    domain: o.domain,
    httpsPort: o.httpsPort,
    httpPort: o.httpPort,
    listen: o.listen,
    dataDir,
    dev: o.dev,
    // TUNN_TEST_IDENTITY_OUTAGE_MS (tests only): a shorter identity cache window for a database outage.
    identityOutageWindowMs: process.env.TUNN_TEST_IDENTITY_OUTAGE_MS ? Number(process.env.TUNN_TEST_IDENTITY_OUTAGE_MS) : undefined,
    storeUrl: o.store,
    secretKey: o.secretKey,
    idleTimeoutMs: o.idleTimeout * 1000,
    headTimeoutMs: o.headTimeout * 1000,
    maxHeadSize: o.maxHeadSize,
    metricsToken: o.metricsToken,
    providers: [
      ...(o.oidcIssuer
        ? [{ type: 'oidc' as const, id: 'oidc', name: o.oidcName, issuer: o.oidcIssuer, clientId: o.oidcClientId!, clientSecret: o.oidcClientSecret!, groupsClaim: o.oidcGroupsClaim, scopes: o.oidcScopes?.split(/[\s,]+/).filter(Boolean) }]
        : []),
      ...(o.googleClientId ? [{ type: 'google' as const, clientId: o.googleClientId, clientSecret: o.googleClientSecret! }] : []),
      ...(o.githubClientId ? [{ type: 'github' as const, clientId: o.githubClientId, clientSecret: o.githubClientSecret! }] : []),
    ],
    magicLink: o.smtpUrl ? { smtpUrl: o.smtpUrl, from: o.mailFrom! } : undefined,
    adminEmails: o.adminEmail,
    idp: { refreshMs: o.idpRefresh === undefined ? undefined : o.idpRefresh * 1000, directory: ldapDirectoryFrom(o) },
    cluster: o.nodeUrl
      ? { nodeUrl: o.nodeUrl, version: tunnVersion(), credentials: o.clusterSecret ? { secret: o.clusterSecret } : { caFile: o.clusterCa!, certFile: o.clusterCert!, keyFile: o.clusterKey! } }
      : undefined,
    kinds: kindsConfigFrom(o),
  };
}

/** Public TCP/UDP ports and their limits (checked by the config schema already). */
function kindsConfigFrom(o: RelayOptions): KindsConfig {
  const range = (v: string | undefined): PortRange | undefined => {
    if (v === undefined) return undefined;
    const r = parsePortRange(v);
    if (!r.ok) throw new TunnError('CONFIG_INVALID', r.message);
    return r.range;
  };
  return {
    tcpPorts: range(o.tcpPorts),
    udpPorts: range(o.udpPorts),
    portQuota: o.portQuota,
    portConnections: o.portConnections,
    portConnectionsPerIp: o.portConnectionsPerIp,
    udpFlows: o.udpFlows,
    udpFlowsTotal: o.udpFlowsTotal,
    udpFlowIdleMs: o.udpFlowIdle === undefined ? undefined : o.udpFlowIdle * 1000,
    tcpIdleMs: o.tcpIdle === undefined ? undefined : o.tcpIdle * 1000,
    reserved: o.dnsPort ? [o.dnsPort] : [],
  };
}

export async function startRelay(o: RelayOptions, logger: Logger): Promise<{ relay: Relay; info: RelayInfo; customDomains: CustomDomains; parts: RelayParts }> {
  const config = relayConfigFrom(o);
  const loose = dataDirWarning(config.dataDir);
  if (loose) logger.warn({ event: 'data_dir_open', dataDir: config.dataDir }, loose);
  if (config.idp?.directory instanceof LdapDirectory) await checkLdapAtStart(config.idp.directory, logger);
  // Built before anything listens: a malformed TSIG key or API URL stops the start with the reason.
  const dnsProvider = await dnsProviderFrom(o);
  const relay = new Relay(config, { logger, clock: systemClock });
  const { store, box, tokens } = await relay.init();
  const c = relay.config;
  // TUNN_TEST_CLOCK_FILE (tests only): a movable clock for certificates; see test-clock.ts.
  const testClock = testClockFrom(process.env);
  // Certificates (ACME, files or the dev CA), the relay's DNS zone and custom domains.
  const customDomains = await createCustomDomains(
    {
      domain: c.domain,
      dataDir: c.dataDir,
      dev: c.dev,
      tlsCert: o.tlsCert,
      tlsKey: o.tlsKey,
      acmeDirectory: o.acmeDirectory,
      acmeEmail: o.acmeEmail,
      acmeCa: o.acmeCa,
      dnsPort: o.dnsPort,
      dnsListen: c.listen,
      publicIps: parsePublicIps(o.publicIp),
      dnsResolver: o.dnsResolver,
      strictDomainVerify: o.strictDomainVerify,
      relayCerts: o.relayCerts,
      acmeChallenges: parseAcmeChallenges(o.acmeChallenge),
      sharedTxt: o.nodeUrl !== undefined,
      sharedChallenges: o.nodeUrl !== undefined,
      certEventToken: o.certEventToken,
      alertWebhook: o.alertWebhook,
    },
    {
      store,
      box,
      logger,
      clock: testClock?.clock ?? systemClock,
      isLiveHost: (h) => relay.isLiveHost(h),
      dnsProvider,
      // Certificate alerts are also security/ops events the domain's owner sees in `tunn events`.
      onAlert: async (a) => {
        const owner = (await domainByName(store, a.domain))?.accountId;
        await relay.recordEvent({ kind: 'cert_alert', tunnel: a.domain, accountId: owner, detail: `${a.kind}: ${a.message}` });
      },
    },
  );
  let info: RelayInfo;
  try {
    // Agents that end TLS themselves: DNS-01 in the relay's zone (names they hold only) and the relay's ACME CA as their default.
    const agentTls = { dns01: dnsProvider ?? customDomains.dnsTxt, acme: o.acmeDirectory ? { directory: o.acmeDirectory, email: o.acmeEmail, caPem: o.acmeCa ? readFileSync(o.acmeCa, 'utf8') : undefined } : undefined };
    info = await relay.start({ certs: customDomains.certs, caPath: customDomains.caPath, plainHook: customDomains.plainHook, resolveDomain: customDomains.resolveDomain, domainApi: customDomains.api, agentTls });
  } catch (err) {
    // start() may fail after its listeners are up (e.g. identity setup): close them too, or
    // the process would print the error and keep running.
    await customDomains.close();
    await relay.close().catch((closeErr: unknown) => logger.warn({ err: errorMessage(closeErr) }, 'closing the relay after a failed start failed too'));
    throw err;
  }
  const probeHost = c.listen === '0.0.0.0' ? '127.0.0.1' : c.listen === '::' ? '::1' : c.listen;
  customDomains.start({ host: probeHost, port: info.httpsPort });
  const unwatchClock = testClock?.onChange(() => {
    logger.info({ now: new Date(testClock.clock.now()).toISOString() }, 'test clock moved: running certificate maintenance');
    void customDomains.manager.maintain().catch((err: unknown) => logger.error({ err: errorMessage(err) }, 'certificate maintenance failed'));
  });
  relay.onClose(async () => {
    unwatchClock?.();
    await customDomains.close();
  });
  return { relay, info, customDomains, parts: { store, box, tokens } };
}

export async function runRelay(flags: Record<string, unknown>): Promise<void> {
  const o = relayOptionsFrom(flags, process.env);
  const logger = createLogger({ json: o.json });
  const { relay, info, customDomains } = await startRelay(o, logger);
  // Give back what start-up grew before idling (issue 9: idle RSS); see v8-tuning.ts.
  releaseStartupMemory();
  logger.info(
    { event: 'ready', domain: info.domain, httpsPort: info.httpsPort, httpPort: info.httpPort, caPath: info.caPath, dev: o.dev, dnsPort: customDomains.dnsPort, dnsProvider: o.dnsProvider, issuer: customDomains.issuer.id, certificate: info.certificate },
    `relay ready: ${info.url}${o.dev ? ` (dev; plain HTTP on port ${info.httpPort}; dev CA: ${info.caPath})` : ''}${info.certificate === 'pending' ? ` (its certificate is still being requested: TLS for ${info.domain} fails until it arrives)` : ''}`,
  );
  onShutdown(async () => {
    logger.info('relay stopping');
    await relay.close();
  });
}
