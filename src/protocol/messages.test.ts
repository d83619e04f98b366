import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { isTunnError } from '../lib/errors.ts';
import {
  AGENT_EVENT_KINDS, agentEventSchema, ALPN_ACME_TLS, ALPN_CONNECT, ALPN_TUNNEL, checkKindOptions, checkTunnelOptions, CONTROL_PATH, DATA_HEADERS, encodeMessage, InvalidMessageError, MESSAGE_SCHEMAS, MESSAGE_TYPES, parseMessage,
  PROTOCOL_VERSION, REFUSAL_REASONS, STREAM_KINDS, TARGET_ERROR_HEADER, TLS_ENDS, TUNNEL_KINDS, tunnelOptionsSchema, WIRE_ERROR_CODES, type ControlMessage,
} from './messages.ts';

/** The fields of an object schema: `name` required, `name?` optional (what a peer may leave out). */
function fieldsOf(schema: z.ZodObject): string[] {
  return Object.entries(schema.shape).map(([k, v]) => ((v as z.ZodType).safeParse(undefined).success ? `${k}?` : k));
}

// The wire is shared by agents and relays of different versions: these lists only grow, at the end.
describe('wire protocol', () => {
  it('pins the message types, ALPN id, paths, headers, kinds, error codes and version (append only)', () => {
    assert.deepEqual(MESSAGE_TYPES, ['hello', 'welcome', 'register', 'registered', 'unregister', 'error', 'replaced', 'notice', 'refused', 'tls-request', 'tls-reply', 'tls-state', 'agent-event']);
    assert.deepEqual(AGENT_EVENT_KINDS, ['rate_limited', 'basic_auth_failed', 'login_failed', 'host_mismatch', 'client_cert_refused']);
    assert.deepEqual(REFUSAL_REASONS, ['ip', 'rate-limit', 'basic-auth', 'sign-in', 'token', 'policy', 'upgrade', 'target', 'unavailable']);
    assert.deepEqual(TUNNEL_KINDS, ['http', 'tcp', 'udp', 'tls']);
    assert.deepEqual(TLS_ENDS, ['relay', 'agent']);
    assert.deepEqual(STREAM_KINDS, ['http', 'tcp', 'udp', 'tls', 'acme-tls-alpn']);
    assert.deepEqual(WIRE_ERROR_CODES.slice(-4), ['INTERNAL', 'REPLACED', 'STOPPED', 'STREAM_KIND']);
    assert.equal(WIRE_ERROR_CODES.length, 26);
    assert.deepEqual(DATA_HEADERS, { tunnel: 'tunn-tunnel', client: 'tunn-client', kind: 'tunn-kind', clientPort: 'tunn-client-port', email: 'tunn-email', assertion: 'tunn-assertion', idleMs: 'tunn-idle-ms' });
    assert.equal(TARGET_ERROR_HEADER, 'tunn-target-error');
    assert.equal(CONTROL_PATH, '/tunn/control');
    assert.equal(ALPN_TUNNEL, 'tunn/1');
    assert.equal(ALPN_CONNECT, 'tunn-connect/1');
    assert.equal(ALPN_ACME_TLS, 'acme-tls/1');
    assert.equal(PROTOCOL_VERSION, 1);
  });

  it('pins the fields of every message and of TunnelOptions', () => {
    const shapes = Object.fromEntries(MESSAGE_TYPES.map((t) => [t, fieldsOf(MESSAGE_SCHEMAS[t])]));
    assert.deepEqual(shapes, {
      hello: ['type', 'version', 'token', 'agentId', 'agentVersion'],
      welcome: ['type', 'accountId', 'email', 'relayDomain', 'sessionId', 'acme?', 'accepts?'],
      register: ['type', 'tunnel'],
      registered: ['type', 'id', 'name', 'host', 'url', 'urls', 'port?'],
      unregister: ['type', 'id'],
      // code: a code this side does not know reads as INTERNAL (it parses, so `code?`).
      error: ['type', 'code?', 'message', 'fatal', 'id?'],
      replaced: ['type', 'id', 'message'],
      notice: ['type', 'message'],
      refused: ['type', 'id', 'refusals', 'more'],
      'tls-request': ['type', 'rid', 'request'],
      'tls-reply': ['type', 'rid', 'result?', 'error?'],
      'tls-state': ['type', 'id', 'state'],
      'agent-event': ['type', 'id', 'event'],
    });
    // No free-text field: an agent event cannot carry a request path, header or body to the relay.
    assert.deepEqual(fieldsOf(agentEventSchema), ['host', 'kind', 'ip', 'email?']);
    assert.deepEqual(fieldsOf(tunnelOptionsSchema), ['id', 'kind?', 'tlsEnds?', 'name?', 'domain?', 'allow', 'public', 'hostHeader?', 'basicAuth?', 'allowIps?', 'rateLimit?', 'allowUpgrade?', 'grantFor?', 'tlsFallback?', 'proxyProtocol?', 'backend?']);
  });

  it('round-trips a message and rejects unknown or malformed ones, saying what was wrong', () => {
    const m = { type: 'notice', message: 'hi' } as const;
    assert.deepEqual(parseMessage(encodeMessage(m).trim()), m);
    assert.throws(() => parseMessage('{"type":"bogus"}'), /unknown control message type "bogus"/);
    assert.throws(() => parseMessage('nope'), /not JSON/);
    assert.throws(() => parseMessage('{}'), /no type/);
    assert.throws(() => parseMessage('{"type":"hello","version":"1","token":"t","agentId":"a","agentVersion":"0"}'), /control message hello: version: .*expected number/);
  });

  it('names the tunnel of a register it cannot read, so the refusal reaches that tunnel', () => {
    const err = (() => {
      try {
        parseMessage(JSON.stringify({ type: 'register', tunnel: { id: 't0', allow: 'bob@x.com', public: false } }));
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err instanceof InvalidMessageError);
    assert.equal(err.messageType, 'register');
    assert.equal(err.tunnelId, 't0');
    assert.match(err.message, /tunnel\.allow/);
  });

  // Security property: an agent event carries no request content to the relay (issue 12's marker rule).
  it('an agent-event keeps only host, kind, address and email: extra fields are dropped, a bad address or kind is refused', () => {
    const m = parseMessage(JSON.stringify({ type: 'agent-event', id: 't0', event: { host: 'a.relay.test', kind: 'host_mismatch', ip: '203.0.113.9', path: '/MARKER', detail: 'MARKER' }, detail: 'MARKER' }));
    assert.deepEqual(m, { type: 'agent-event', id: 't0', event: { host: 'a.relay.test', kind: 'host_mismatch', ip: '203.0.113.9' } });
    assert.throws(() => parseMessage(JSON.stringify({ type: 'agent-event', id: 't0', event: { host: 'a.relay.test', kind: 'host_mismatch', ip: 'GET /MARKER' } })), /control message agent-event: event\.ip/);
    assert.throws(() => parseMessage(JSON.stringify({ type: 'agent-event', id: 't0', event: { host: 'a.relay.test', kind: 'anything', ip: '::1' } })), /control message agent-event: event\.kind/);
    assert.throws(() => parseMessage(JSON.stringify({ type: 'agent-event', id: 't0', event: { host: 'x'.repeat(300), kind: 'login_failed', ip: '::1' } })), /event\.host/);
  });

  it('reads an error code it does not know as INTERNAL, keeping the message and fatal flag', () => {
    const m = parseMessage(JSON.stringify({ type: 'error', code: 'FROM_THE_FUTURE', message: 'later', fatal: true }));
    assert.deepEqual(m, { type: 'error', code: 'INTERNAL', message: 'later', fatal: true });
  });

  it('keeps the fields a newer agent adds out of the relay (unknown fields are dropped)', () => {
    const m = parseMessage(JSON.stringify({ type: 'register', tunnel: { id: 't0', allow: [], public: true, kind: 'http', future: 1 } }));
    assert.deepEqual(m, { type: 'register', tunnel: { id: 't0', allow: [], public: true, kind: 'http' } });
  });

  it('checks the rules between TunnelOptions fields the same way on both ends', () => {
    assert.throws(() => checkTunnelOptions({ allow: ['a@b.com'], public: true }), (e) => isTunnError(e, 'INVALID_INPUT') && /--public and -a do not go together/.test(e.message));
    assert.throws(() => checkTunnelOptions({ allow: [], public: false, grantFor: { seconds: 60, ref: 'r' } }), (e) => isTunnError(e, 'INVALID_INPUT') && /--for limits the -a entries .* add -a <who>/.test(e.message));
    checkTunnelOptions({ allow: ['a@b.com'], public: false, grantFor: { seconds: 60, ref: 'r' } });
  });

  it('checks the options of the kinds beyond HTTP, saying what fits', () => {
    const bad = (o: Parameters<typeof checkKindOptions>[0], re: RegExp): void => assert.throws(() => checkKindOptions(o), (e) => isTunnError(e, 'INVALID_INPUT') && re.test(e.message), JSON.stringify(o));
    bad({ kind: 'udp', proxyProtocol: true }, /--proxy-protocol is for tcp and tls tunnels/);
    bad({ kind: 'tcp', backend: 'tcp' }, /--backend is for tls tunnels/);
    bad({ kind: 'tcp', basicAuth: { user: 'u', pass: 'p' } }, /a tcp tunnel carries bytes, not HTTP requests/);
    bad({ kind: 'tls', tlsEnds: 'agent' }, /TLS at the agent goes with --backend tcp/);
    checkKindOptions({ kind: 'tcp', proxyProtocol: true });
    checkKindOptions({ kind: 'tls', backend: 'tcp', proxyProtocol: true });
    checkKindOptions({ kind: 'http', hostHeader: 'x' });
  });

  it('carries the requests the relay refused for a tunnel, one by one and counted beyond', () => {
    const m: ControlMessage = {
      type: 'refused',
      id: 't0',
      refusals: [{ at: 1_700_000_000_000, method: 'GET', path: '/admin', status: 403, reason: 'policy', who: 'bob@x.com', ip: '192.0.2.7' }],
      more: [{ status: 429, reason: 'rate-limit', count: 57 }],
    };
    assert.deepEqual(parseMessage(encodeMessage(m).trim()), m);
  });
});
