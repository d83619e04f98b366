import type { ClientHttp2Stream } from 'node:http2';
import { z } from 'zod';
import { TARGET_ERROR_HEADER, WIRE_ERROR_CODES, type WireErrorCode } from './messages.ts';

// Why a stream to a tunnel was not opened, in one shape for every hop that can say no: the agent
// answering a tcp/udp stream the relay opened (the target refused, …) and the relay answering a
// `tunn connect` stream (not signed in, not on the allow-list, …). The answer is an HTTP/2
// response that is not 200: `:status`, the `tunn-refusal` header with the reason (so a reader
// need not parse a body), and a JSON body with the message a person reads.
// One mechanism for every refused data stream: the same answer also carries TARGET_ERROR_HEADER
// with a wire code (what the relay's HTTP path reads), and a reader of a peer that sent only that
// header (an agent refusing a stream kind it does not serve) still gets a typed refusal.

export const REFUSAL_HEADER = 'tunn-refusal';

export const REFUSAL_REASONS = [
  /** The target answered with a reset (nothing listens on its port). */
  'target_refused',
  /** The target's host did not resolve or could not be reached. */
  'target_unreachable',
  /** The target did not answer within the connect timeout. */
  'target_timeout',
  /** No usable credentials (none, expired, revoked). */
  'unauthenticated',
  /** Signed in, but not on the tunnel's allow-list. */
  'forbidden',
  /** No live tunnel of that name (or of a kind this client cannot carry). */
  'not_found',
  /** A connection or flow limit was reached. */
  'limit_reached',
  /** The request was not what the protocol expects. */
  'bad_request',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

const STATUS: Record<RefusalReason, number> = {
  target_refused: 502,
  target_unreachable: 502,
  target_timeout: 504,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  limit_reached: 429,
  bad_request: 400,
};

/** The wire code each reason is sent as in TARGET_ERROR_HEADER. */
const WIRE_CODE: Record<RefusalReason, WireErrorCode> = {
  target_refused: 'UNAVAILABLE',
  target_unreachable: 'UNAVAILABLE',
  target_timeout: 'UNAVAILABLE',
  unauthenticated: 'AUTH_REQUIRED',
  forbidden: 'FORBIDDEN',
  not_found: 'NOT_FOUND',
  limit_reached: 'RATE_LIMITED',
  bad_request: 'PROTOCOL_ERROR',
};

/** A wire code (TARGET_ERROR_HEADER alone) read as a reason. */
function reasonOfWireCode(code: string): RefusalReason | undefined {
  if (!(WIRE_ERROR_CODES as readonly string[]).includes(code)) return undefined;
  if (code === 'AUTH_REQUIRED' || code === 'AUTH_INVALID_TOKEN' || code === 'AUTH_TOKEN_REVOKED') return 'unauthenticated';
  if (code === 'FORBIDDEN') return 'forbidden';
  if (code === 'NOT_FOUND' || code === 'STREAM_KIND') return 'not_found';
  if (code === 'RATE_LIMITED') return 'limit_reached';
  if (code === 'UNAVAILABLE') return 'target_unreachable';
  return 'bad_request';
}

export const refusalBodySchema = z.object({ error: z.object({ code: z.string().max(64), message: z.string().max(2000) }) });

export interface Refusal {
  reason: RefusalReason;
  message: string;
}

/** The response headers and body that refuse a stream. */
export function refusalResponse(r: Refusal): { headers: Record<string, string | number>; body: string } {
  return {
    headers: { ':status': STATUS[r.reason], [REFUSAL_HEADER]: r.reason, [TARGET_ERROR_HEADER]: WIRE_CODE[r.reason], 'content-type': 'application/json' },
    body: JSON.stringify({ error: { code: r.reason, message: r.message } }),
  };
}

/**
 * Reads a refusal from a non-200 answer. A peer that sent no reason (or one this version does not
 * know) is reported as bad_request with what it did send, never dropped silently.
 */
export function readRefusal(status: number, headers: Record<string, unknown>, body: string): Refusal {
  const wire = headers[TARGET_ERROR_HEADER];
  const h = headers[REFUSAL_HEADER] ?? wire;
  const reason = (REFUSAL_REASONS as readonly string[]).includes(String(h)) ? (h as RefusalReason) : (reasonOfWireCode(String(wire ?? '')) ?? 'bad_request');
  let message = `answered ${status}${h ? ` (${String(h)})` : ''}`;
  if (String(wire) === 'STREAM_KIND') message = 'the agent does not serve this kind of stream: upgrade tunn on the machine that runs the tunnel';
  try {
    const parsed = refusalBodySchema.safeParse(JSON.parse(body));
    if (parsed.success) message = parsed.data.error.message;
  } catch {
    // Not JSON: the status says enough.
  }
  return { reason, message };
}

/** The opener's view of a stream's answer: open (200), or refused with the peer's reason. */
export type StreamAnswer = { open: true } | { open: false; refusal: Refusal };

/**
 * Waits for the answer to a stream the caller opened (`session.request(…)`): 200 means the bytes
 * that follow are the connection's; anything else is read as a refusal (body up to 16 KiB). A
 * stream that closes or fails before answering is a refusal too, so a caller always learns why.
 */
export function awaitStreamAnswer(req: ClientHttp2Stream): Promise<StreamAnswer> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (a: StreamAnswer): void => {
      if (done) return;
      done = true;
      resolve(a);
    };
    req.once('response', (headers) => {
      const status = Number(headers[':status']);
      if (status === 200) return finish({ open: true });
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => {
        if (body.length < 16 * 1024) body += d;
      });
      req.once('end', () => finish({ open: false, refusal: readRefusal(status, headers, body) }));
      req.once('close', () => finish({ open: false, refusal: readRefusal(status, headers, body) }));
    });
    req.once('error', (err) => finish({ open: false, refusal: { reason: 'target_unreachable', message: `the stream failed before an answer: ${err.message}` } }));
    req.once('close', () => finish({ open: false, refusal: { reason: 'target_unreachable', message: `the stream closed before an answer (HTTP/2 code ${req.rstCode ?? 'none'})` } }));
  });
}
