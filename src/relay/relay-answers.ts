import type { Logger } from '../lib/logger.ts';
import { newRequestId } from '../lib/page.ts';
import type { Refusal } from '../protocol/messages.ts';
import type { GatewayOptions } from './gateway.ts';
import { serializeResponse, type LocalResponse } from './pages.ts';
import type { Tunnel } from './tunnel-directory.ts';

// What the relay does when it answers a request itself (http-proxy.ts): the bytes, the log
// line and the count on the tunnel (once, as the answer is written), and the refusal reported
// to the tunnel's owner.

/** The request an answer of the relay stands for. */
export interface AnsweredRequest {
  /** Its method (HEAD: no body) and path; none when no head was parsed (timed out, unparsable). */
  method?: string;
  path?: string;
  /** The host it was for (its Host header, or the tunnel's). */
  host?: string;
  /** The client asked to keep the connection (HTTP/1.1 rules of its head); false when no head was parsed. */
  keepAlive: boolean;
  /** The id routing gave it (a page of the gate shows it); else a new one. */
  requestId?: string;
  /** The tunnel whose metrics count the answer. */
  tunnel?: Tunnel;
}

/**
 * The bytes of the relay's answer `r` to `a`, logged and counted here (call it once, when the
 * bytes are written). `close`: the answer says Connection: close (the page asks for it, or the
 * client did not ask to keep the connection).
 */
export function relayAnswer(logger: Logger, clientIp: string, r: LocalResponse, a: AnsweredRequest): { bytes: Buffer; close: boolean } {
  // One id per answer, logged here and shown in the page.
  const requestId = a.requestId ?? newRequestId();
  const line = { reqId: requestId, status: r.status, host: a.host, method: a.method, path: a.path?.split('?')[0], client: clientIp };
  if (r.status >= 400) logger.info(line, 'answered by the relay');
  else logger.debug(line, 'answered by the relay');
  a.tunnel?.metrics.requests(r.status);
  const close = !a.keepAlive || r.close === true;
  return { bytes: serializeResponse(r, { head: a.method === 'HEAD', keepAlive: !close, requestId }), close };
}

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
