import { bodyInfo, type BodyInfo } from './body-view.ts';
import type { Header, InspectedRequest } from './model.ts';
import { redactHeaders, redactPath } from './redact.ts';
import { websocketMessages, type WebSocketMessage } from './websocket-view.ts';

// The JSON shapes of /api/requests (summaries) and /api/requests/:id (details).

export interface RequestSummary {
  id: number;
  tunnel: string;
  time: string;
  visitor: string;
  clientIp: string;
  method: string;
  path: string;
  status: number | null;
  durationMs: number | null;
  requestBytes: number;
  responseBytes: number;
  state: InspectedRequest['state'];
  replayOf: number | null;
  websocket: boolean;
}

export interface RequestDetail extends RequestSummary {
  httpVersion: string;
  reason: string;
  requestHeaders: Header[];
  responseHeaders: Header[];
  requestBody: BodyInfo;
  responseBody: BodyInfo;
  websocketMessages: WebSocketMessage[];
}

export function summary(e: InspectedRequest, showSecrets: boolean): RequestSummary {
  return {
    id: e.id,
    tunnel: e.tunnel,
    time: new Date(e.time).toISOString(),
    visitor: e.visitor ?? 'public',
    clientIp: e.clientIp,
    method: e.method,
    path: showSecrets ? e.path : redactPath(e.path),
    status: e.status ?? null,
    durationMs: e.durationMs === undefined ? null : Math.round(e.durationMs * 1000) / 1000,
    requestBytes: e.requestBody.size,
    responseBytes: e.responseBody.size,
    state: e.state,
    replayOf: e.replayOf ?? null,
    websocket: e.websocket !== undefined,
  };
}

export function detail(e: InspectedRequest, showSecrets: boolean): RequestDetail {
  const reqH = e.requestHeaders;
  const resH = e.responseHeaders ?? [];
  const ws = e.websocket;
  return {
    ...summary(e, showSecrets),
    httpVersion: e.httpVersion,
    reason: e.reason ?? '',
    requestHeaders: showSecrets ? reqH : redactHeaders(reqH),
    responseHeaders: showSecrets ? resH : redactHeaders(resH),
    requestBody: bodyInfo(e.requestBody, reqH, showSecrets),
    responseBody: bodyInfo(e.responseBody, resH, showSecrets),
    websocketMessages: ws ? [...websocketMessages(ws.toTarget.bytes(), 'to-target'), ...websocketMessages(ws.toClient.bytes(), 'to-client')] : [],
  };
}

export interface Filter {
  status?: string;
  method?: string;
  path?: string;
  visitor?: string;
}

/** Filters of the list: status class ("2xx"), method, path text, visitor text. */
export function matches(s: RequestSummary, f: Filter): boolean {
  if (f.status && !(s.status !== null && /^[1-5]xx$/.test(f.status) && String(s.status)[0] === f.status[0])) return false;
  if (f.method && s.method !== f.method.toUpperCase()) return false;
  if (f.path && !s.path.toLowerCase().includes(f.path.toLowerCase())) return false;
  if (f.visitor && !s.visitor.toLowerCase().includes(f.visitor.toLowerCase())) return false;
  return true;
}
