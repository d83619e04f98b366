import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { fromEnv, fromFile, relayDefaults, relaySchema, resolveConfig, type RelayOptions } from '../config/config.ts';
import { systemClock } from '../lib/clock.ts';
import { createLogger, type Logger } from '../lib/logger.ts';
import { Relay, type RelayConfig, type RelayInfo } from '../relay/relay.ts';

export function relayOptionsFrom(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): RelayOptions {
  const envLayer = fromEnv(Object.keys(relaySchema.shape), env);
  const dev = Boolean(flags.dev ?? ['1', 'true'].includes(String(envLayer.dev ?? '')));
  const { config, ...rest } = flags;
  return resolveConfig(relaySchema, [relayDefaults(dev), fromFile(config as string | undefined), envLayer, rest]);
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
    tlsCert: o.tlsCert,
    tlsKey: o.tlsKey,
    storeUrl: o.store,
    secretKey: o.secretKey,
    idleTimeoutMs: o.idleTimeout * 1000,
    headTimeoutMs: o.headTimeout * 1000,
    maxHeadSize: o.maxHeadSize,
    metricsToken: o.metricsToken,
    providers: [
      ...(o.oidcIssuer ? [{ type: 'oidc' as const, id: 'oidc', name: o.oidcName, issuer: o.oidcIssuer, clientId: o.oidcClientId!, clientSecret: o.oidcClientSecret! }] : []),
      ...(o.googleClientId ? [{ type: 'google' as const, clientId: o.googleClientId, clientSecret: o.googleClientSecret! }] : []),
      ...(o.githubClientId ? [{ type: 'github' as const, clientId: o.githubClientId, clientSecret: o.githubClientSecret! }] : []),
    ],
    magicLink: o.smtpUrl ? { smtpUrl: o.smtpUrl, from: o.mailFrom! } : undefined,
    adminEmails: o.adminEmail,
  };
}

export async function startRelay(o: RelayOptions, logger: Logger): Promise<{ relay: Relay; info: RelayInfo }> {
  const relay = new Relay(relayConfigFrom(o), { logger, clock: systemClock });
  const info = await relay.start();
  return { relay, info };
}

export async function runRelay(flags: Record<string, unknown>): Promise<void> {
  const o = relayOptionsFrom(flags, process.env);
  const logger = createLogger({ json: o.json });
  const { relay, info } = await startRelay(o, logger);
  logger.info(
    { event: 'ready', domain: info.domain, httpsPort: info.httpsPort, httpPort: info.httpPort, caPath: info.caPath, dev: o.dev },
    `relay ready: ${info.url}${o.dev ? ` (dev; plain HTTP on port ${info.httpPort}; dev CA: ${info.caPath})` : ''}`,
  );
  onShutdown(async () => {
    logger.info('relay stopping');
    await relay.close();
  });
}

export function onShutdown(fn: () => Promise<void> | void): void {
  let stopping = false;
  const handler = (): void => {
    if (stopping) process.exit(130);
    stopping = true;
    Promise.resolve(fn()).finally(() => process.exit(0));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}
