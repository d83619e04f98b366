import type { Logger } from '../lib/logger.ts';
import type { MessageHead } from '../lib/http1.ts';
import type { Refusal } from '../protocol/messages.ts';
import type { GatewayOptions } from './gateway.ts';
import type { Tunnel } from './tunnel-directory.ts';

// What the relay records when it answers a request itself (http-proxy.ts): the log line, and
// the refusal counted on the tunnel and reported to its owner.

/** Counts a request the relay answered itself on `tunnel` and tells the tunnel's owner. */
export function reportRefusal(
  opts: Pick<GatewayOptions, 'onRefused'>,
  clientIp: string,
  tunnel: Tunnel,
  method: string,
  path: string,
  status: number,
  why: Pick<Refusal, 'reason' | 'who' | 'detail'>,
): void {
  if (why.reason !== 'target') tunnel.metrics.refuse(why.reason);
  // Fields are cut to their MAX_REFUSAL_* lengths where reports are gathered (refusal-reports.ts).
  opts.onRefused?.(tunnel, { at: Date.now(), method, path, status, ip: clientIp, ...why });
}

/** The log line of a response the relay wrote itself; its reqId is the one the page shows. */
export function logRelayAnswer(logger: Logger, clientIp: string, reqId: string, status: number, host: string | undefined, head: MessageHead | undefined): void {
  const line = { reqId, status, host, method: head?.method, path: head?.target.split('?')[0], client: clientIp };
  if (status >= 400) logger.info(line, 'answered by the relay');
  else logger.debug(line, 'answered by the relay');
}
