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

export function captureWatch(ctx: CaptureContext): StreamWatch {
  const { store } = ctx;
  const pending: { entry: InspectedRequest; start: number }[] = [];
  let current: { entry: InspectedRequest; start: number; bytes: number } | undefined;
  let requestEntry: InspectedRequest | undefined;
  let upgraded: InspectedRequest | undefined;
  let stopped = false;

  const req: Http1Framer = new Http1Framer(
    { kind: 'request', maxHeadSize: MAX_HEAD },
    {
      onHead: (h) => {
        const entry = newEntry(ctx, h);
        requestEntry = entry;
        entry.requestBody.chunked = isChunked(h);
        pending.push({ entry, start: performance.now() });
        store.add(entry);
      },
      onBody: (c, s, e) => {
        if (requestEntry) store.charge(requestEntry, requestEntry.requestBody.append(c, s, e, store.accepts(requestEntry)));
      },
      onMessageEnd: () => {
        // After an upgrade request the client's bytes are the new protocol's (if the target agrees).
        if (requestEntry && wantsUpgrade(headOf(requestEntry))) req.switchToRaw();
        requestEntry = undefined;
      },
      onRaw: (c, s) => {
        if (upgraded?.websocket) store.charge(upgraded, upgraded.websocket.toTarget.append(c, s, c.length, store.accepts(upgraded)));
      },
    },
  );
  const res: Http1Framer = new Http1Framer(
    { kind: 'response', maxHeadSize: MAX_HEAD, nextRequestMethod: () => pending[0]?.entry.method },
    {
      onHead: (h) => {
        if (h.status >= 100 && h.status < 200 && h.status !== 101) return;
        const p = pending.shift();
        if (!p) return;
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
    request: feed(req),
    response: feed(res),
    end: () => {
      if (ended) return;
      ended = true;
      if (!stopped && res.finish()) finish('complete');
      else finish('aborted');
      for (const p of pending.splice(0)) {
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

function headOf(e: InspectedRequest): MessageHead {
  return { method: e.method, target: e.path, status: 0, reason: '', versionMinor: 1, headers: e.requestHeaders, names: e.requestHeaders.map(([k]) => k.toLowerCase()), size: 0 };
}

function isChunked(h: MessageHead): boolean {
  return /(^|,)\s*chunked\s*$/i.test(headerValue(h, 'transfer-encoding') ?? '');
}

function lastForwardedFor(h: MessageHead): string {
  const v = headerValue(h, 'x-forwarded-for') ?? '';
  return v.split(',').pop()?.trim() ?? '';
}
