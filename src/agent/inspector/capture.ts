import { headerValue, Http1Framer, wantsUpgrade, watchFeed, type MessageHead } from '../../lib/http1.ts';
import { USER_EMAIL_HEADER } from '../../auth/gate.ts';
import type { RequestLogEntry, StreamWatch } from '../forward.ts';
import { BodyCapture, WEBSOCKET_LIMIT, type InspectedRequest } from './model.ts';
import type { InspectorStore } from './store.ts';

// Capture of one forwarded connection for the inspector: an HTTP/1 framer per direction (the
// one the relay and the request log use) turns the bytes into entries in the store. It only
// copies what the store's bounds allow and never touches the forwarding: a parse failure
// ends capture for the connection, not the connection.

export interface CaptureContext {
  store: InspectorStore;
  /** The tunnel's public host as known now. */
  tunnel: () => string;
  tunnelIndex: number;
  /** The public client's address as the relay reported it on the stream. */
  clientIp: string;
  /** Also report each request to the request log (one framer pair serves both). */
  onRequest?: (e: RequestLogEntry) => void;
}

const MAX_HEAD = 1024 * 1024;
/**
 * Requests captured on one connection and still waiting for their response. Beyond this
 * (a client pipelining to a target that never answers) requests are not captured, only
 * counted, so the capture's memory stays bounded however many are sent. The relay forwards at
 * most MAX_PIPELINED (32) at a time, so with a tunn relay none is dropped.
 */
export const MAX_PENDING_CAPTURES = 64;

/** A captured request awaiting its response, or a run of requests after it not captured. */
type Pending = { entry: InspectedRequest; start: number } | { skipped: number };

export function captureWatch(ctx: CaptureContext): StreamWatch & { readonly dropped: number } {
  const { store } = ctx;
  const pending: Pending[] = [];
  let captured = 0;
  let dropped = 0;
  let current: { entry: InspectedRequest; start: number; bytes: number } | undefined;
  let requestEntry: InspectedRequest | undefined;
  /** The request being read asked for an upgrade (read once from its head). */
  let requestUpgrade = false;
  let upgraded: InspectedRequest | undefined;
  let stopped = false;

  const req: Http1Framer = new Http1Framer(
    { kind: 'request', maxHeadSize: MAX_HEAD },
    {
      onHead: (h) => {
        if (captured >= MAX_PENDING_CAPTURES) {
          requestEntry = undefined;
          // Responses are paired with requests by position: a skipped request keeps its place.
          // Only HEAD, CONNECT and upgrades change how what follows is framed; rather than keep
          // each method, capture ends for the connection at one of those.
          if (h.method === 'HEAD' || h.method === 'CONNECT' || wantsUpgrade(h)) stopped = true;
          dropped++;
          const last = pending[pending.length - 1];
          if (last && 'skipped' in last) last.skipped++;
          else pending.push({ skipped: 1 });
          return;
        }
        const entry = newEntry(ctx, h);
        requestEntry = entry;
        requestUpgrade = wantsUpgrade(h);
        entry.requestBody.chunked = isChunked(h);
        pending.push({ entry, start: performance.now() });
        captured++;
        store.add(entry);
      },
      onBody: (c, s, e) => {
        if (requestEntry) store.charge(requestEntry, requestEntry.requestBody.append(c, s, e, store.accepts(requestEntry)));
      },
      onMessageEnd: () => {
        // After an upgrade request the client's bytes are the new protocol's (if the target agrees).
        if (requestEntry && requestUpgrade) req.switchToRaw();
        requestEntry = undefined;
      },
      onRaw: (c, s) => {
        if (upgraded?.websocket) store.charge(upgraded, upgraded.websocket.toTarget.append(c, s, c.length, store.accepts(upgraded)));
      },
    },
  );
  const res: Http1Framer = new Http1Framer(
    { kind: 'response', maxHeadSize: MAX_HEAD, nextRequestMethod: () => methodOf(pending[0]) },
    {
      onHead: (h) => {
        if (h.status >= 100 && h.status < 200 && h.status !== 101) return;
        const first = pending[0];
        if (first && 'skipped' in first) {
          if (--first.skipped === 0) pending.shift();
          return;
        }
        const p = pending.shift();
        if (!p || 'skipped' in p) return;
        captured--;
        const { entry } = p;
        entry.status = h.status;
        entry.reason = h.reason;
        entry.responseHeaders = h.headers;
        entry.responseBody.chunked = isChunked(h);
        current = { ...p, bytes: h.size };
        if (h.status === 101) {
          entry.websocket = { toTarget: new BodyCapture(WEBSOCKET_LIMIT), toClient: new BodyCapture(WEBSOCKET_LIMIT) };
          upgraded = entry;
        }
      },
      onBody: (c, s, e) => {
        if (!current) return;
        current.bytes += e - s;
        store.charge(current.entry, current.entry.responseBody.append(c, s, e, store.accepts(current.entry)));
      },
      onMessageEnd: () => {
        finish('complete');
        if (upgraded) res.switchToRaw();
      },
      onRaw: (c, s) => {
        if (upgraded?.websocket) {
          const kept = upgraded.websocket.toClient.append(c, s, c.length, store.accepts(upgraded));
          store.charge(upgraded, kept);
          if (kept > 0) store.updated(upgraded);
        }
      },
    },
  );

  const finish = (state: 'complete' | 'aborted'): void => {
    if (!current) return;
    const c = current;
    current = undefined;
    c.entry.durationMs = performance.now() - c.start;
    c.entry.state = state;
    store.updated(c.entry);
    ctx.onRequest?.({ time: new Date(c.entry.time), method: c.entry.method, path: c.entry.path, status: c.entry.status ?? 0, durationMs: c.entry.durationMs, bytes: c.bytes });
  };

  const feed = (framer: Http1Framer) =>
    watchFeed(
      framer,
      () => stopped,
      () => (stopped = true),
    );
  let ended = false;
  return {
    /** Requests not captured because MAX_PENDING_CAPTURES were waiting for their response. */
    get dropped() {
      return dropped;
    },
    request: feed(req),
    response: feed(res),
    end: () => {
      if (ended) return;
      ended = true;
      if (!stopped && res.finish()) finish('complete');
      else finish('aborted');
      for (const p of pending.splice(0)) {
        if ('skipped' in p) continue;
        p.entry.state = 'aborted';
        p.entry.durationMs = performance.now() - p.start;
        store.updated(p.entry);
      }
      if (upgraded) store.updated(upgraded);
    },
  };
}

function newEntry(ctx: CaptureContext, h: MessageHead): InspectedRequest {
  return {
    id: ctx.store.nextId(),
    tunnel: ctx.tunnel(),
    tunnelIndex: ctx.tunnelIndex,
    time: Date.now(),
    // The relay removes inbound copies of this header and sets it only for a verified visitor.
    visitor: headerValue(h, USER_EMAIL_HEADER) ?? null,
    clientIp: ctx.clientIp || lastForwardedFor(h),
    method: h.method,
    path: h.target,
    httpVersion: `1.${h.versionMinor}`,
    requestHeaders: h.headers,
    requestBody: new BodyCapture(),
    responseBody: new BodyCapture(),
    state: 'pending',
    evicted: false,
    retained: h.size,
  };
}

function methodOf(p: Pending | undefined): string | undefined {
  if (!p) return undefined;
  return 'skipped' in p ? 'GET' : p.entry.method;
}

function isChunked(h: MessageHead): boolean {
  const te = headerValue(h, 'transfer-encoding');
  return te !== undefined && /(^|,)\s*chunked\s*$/i.test(te);
}

function lastForwardedFor(h: MessageHead): string {
  const v = headerValue(h, 'x-forwarded-for') ?? '';
  return v.split(',').pop()?.trim() ?? '';
}
