import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { errorMessage, TunnError } from '../../lib/errors.ts';
import { localhostAwareLookup, type Target } from '../target.ts';
import { dechunk } from './body-view.ts';
import { BodyCapture, type Header, type InspectedRequest } from './model.ts';
import { redactPath, unredactHeaders } from './redact.ts';
import type { InspectorStore } from './store.ts';

// Replay sends a captured request again to the tunnel's own target, as it was or edited
// (method, path, headers, body). The destination is never taken from the request: the path
// must be origin-form and the Host header, edited or not, does not pick where it goes.

export interface ReplayEdit {
  method?: string;
  path?: string;
  headers?: Header[];
  /** The new body as text; absent: the original bytes. */
  body?: string;
}

// Framing is recomputed for the bytes actually sent; upgrades are not replayed.
const DROPPED = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'proxy-connection']);

export function parseReplayEdit(input: unknown): ReplayEdit {
  const bad = (what: string): never => {
    throw new TunnError('INVALID_INPUT', `replay: ${what}`);
  };
  if (input === undefined || input === null) return {};
  if (typeof input !== 'object' || Array.isArray(input)) return bad('send a JSON object with any of method, path, headers ([[name, value], …]) and body (text)');
  const o = input as Record<string, unknown>;
  const edit: ReplayEdit = {};
  if (o.method !== undefined) {
    if (typeof o.method !== 'string' || !/^[A-Za-z]{1,20}$/.test(o.method)) bad('method must be a word such as GET or POST');
    edit.method = (o.method as string).toUpperCase();
  }
  if (o.path !== undefined) {
    // Origin-form only: an absolute URL or "//host" would name another destination.
    if (typeof o.path !== 'string' || !o.path.startsWith('/') || o.path.startsWith('//') || /[\s\x00-\x1f\x7f]/.test(o.path)) bad('path must start with a single "/" (the replay goes only to this tunnel\'s target), with no spaces or control characters');
    edit.path = o.path as string;
  }
  if (o.headers !== undefined) {
    const ok = Array.isArray(o.headers) && o.headers.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && typeof h[1] === 'string' && /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(h[0]) && !/[\r\n\x00]/.test(h[1]));
    if (!ok) bad('headers must be [[name, value], …] with token names and values without line breaks');
    edit.headers = o.headers as Header[];
  }
  if (o.body !== undefined) {
    if (typeof o.body !== 'string') bad('body must be text');
    edit.body = o.body as string;
  }
  return edit;
}

/** Sends the replay and records it as a new entry (marked as a replay of `original`). */
export async function replay(store: InspectorStore, original: InspectedRequest, target: Target, edit: ReplayEdit, verifyTargetTls: boolean): Promise<InspectedRequest> {
  if (original.websocket || original.requestHeaders.some(([k, v]) => k.toLowerCase() === 'upgrade' && v)) {
    throw new TunnError('INVALID_INPUT', 'replay: WebSocket and other upgrade requests cannot be replayed; open a new connection instead');
  }
  let body: Buffer;
  if (edit.body !== undefined) body = Buffer.from(edit.body);
  else if (original.requestBody.truncated || original.evicted) throw new TunnError('INVALID_INPUT', `replay: the original body (${original.requestBody.size} bytes) was not kept whole (bodies are kept up to 1 MiB); send an edited body instead`);
  else body = original.requestBody.chunked ? dechunk(original.requestBody.bytes()) : Buffer.from(original.requestBody.bytes());
  const headers = (edit.headers ? unredactHeaders(edit.headers, original.requestHeaders) : original.requestHeaders).filter(([k]) => !DROPPED.has(k.toLowerCase()));
  const method = edit.method ?? original.method;
  // The page offers the path as shown: unchanged (secrets redacted), it means the original.
  const path = edit.path === undefined || edit.path === redactPath(original.path) ? original.path : edit.path;
  if (body.length > 0 || !['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(method)) headers.push(['Content-Length', String(body.length)]);
  const entry: InspectedRequest = {
    id: store.nextId(),
    tunnel: original.tunnel,
    tunnelIndex: original.tunnelIndex,
    time: Date.now(),
    visitor: original.visitor,
    clientIp: 'replay',
    method,
    path,
    httpVersion: '1.1',
    requestHeaders: headers,
    requestBody: new BodyCapture(),
    responseBody: new BodyCapture(),
    state: 'pending',
    replayOf: original.id,
    evicted: false,
    retained: 0,
  };
  store.charge(entry, entry.requestBody.append(body, 0, body.length));
  store.add(entry);
  const start = performance.now();
  try {
    const res = await send(target, method, path, headers, body, verifyTargetTls);
    entry.status = res.statusCode ?? 0;
    entry.reason = res.statusMessage ?? '';
    entry.responseHeaders = pairs(res.rawHeaders);
    for await (const chunk of res as AsyncIterable<Buffer>) store.charge(entry, entry.responseBody.append(chunk, 0, chunk.length, store.accepts(entry)));
    entry.state = 'complete';
  } catch (err) {
    entry.state = 'aborted';
    entry.reason = `replay failed: ${errorMessage(err)}`;
  }
  entry.durationMs = performance.now() - start;
  store.updated(entry);
  return entry;
}

function send(t: Target, method: string, path: string, headers: Header[], body: Buffer, verify: boolean): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const opts = { host: t.host, port: t.port, method, path, headers: headers.flat(), lookup: localhostAwareLookup as never, agent: false as const, setHost: false, timeout: 30_000 };
    const req = t.protocol === 'https' ? https.request({ ...opts, rejectUnauthorized: verify }, resolve) : http.request(opts, resolve);
    req.on('timeout', () => req.destroy(new Error(`${t.display} did not answer within 30 s`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(`${t.display}: ${err.code ?? err.message}`)));
    req.end(body);
  });
}

function pairs(raw: string[]): Header[] {
  const out: Header[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!]);
  return out;
}
