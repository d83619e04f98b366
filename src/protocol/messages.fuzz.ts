import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import { cuts, fuzzTarget, mutated, randomBytes, split, type FuzzTarget } from '../lib/fuzz.ts';
import { ControlChannel } from './control-channel.ts';
import { encodeMessage, InvalidMessageError, MESSAGE_TYPES, parseMessage, WIRE_ERROR_CODES, type ControlMessage } from './messages.ts';

// Fuzz targets of the control-message parser (messages.ts) and the JSON-lines channel that feeds
// it (control-channel.ts): both read what an agent (anyone holding a socket to the relay's TLS
// port with ALPN tunn/1) sends before and after it authenticates. Properties:
// - parseMessage returns a message of a known type or throws an InvalidMessageError that says what was wrong
//   in a bounded message (it is logged); valid messages round-trip;
// - the channel emits the same messages and errors whether the bytes arrive whole or split at
//   any point (inside a UTF-8 character too), and throws nothing.

const text = fc.string({ unit: 'binary', maxLength: 30 });
const tunnel = fc.record(
  { id: text, name: text, domain: text, allow: fc.array(text, { maxLength: 3 }), public: fc.boolean(), hostHeader: text, allowIps: fc.array(fc.constantFrom('10.0.0.0/8', '::1'), { maxLength: 2 }) },
  { requiredKeys: ['id', 'allow', 'public'] },
);
const message: fc.Arbitrary<ControlMessage> = fc.oneof(
  fc.record({ type: fc.constant('hello' as const), version: fc.integer(), token: text, agentId: text, agentVersion: text }),
  fc.record({ type: fc.constant('welcome' as const), accountId: text, email: text, relayDomain: text, sessionId: text }),
  fc.record({ type: fc.constant('register' as const), tunnel }),
  fc.record({ type: fc.constant('registered' as const), id: text, name: text, host: text, url: text, urls: fc.array(text, { maxLength: 3 }) }),
  fc.record({ type: fc.constant('unregister' as const), id: text }),
  fc.record({ type: fc.constant('error' as const), code: fc.constantFrom(...WIRE_ERROR_CODES), message: text, fatal: fc.boolean(), id: text }, { requiredKeys: ['type', 'code', 'message', 'fatal'] }),
  fc.record({ type: fc.constant('replaced' as const), id: text, message: text }),
  fc.record({ type: fc.constant('notice' as const), message: text }),
);
/** One line: a valid message, any JSON (with a type or not), mutated JSON, deep nesting, any text. */
const line: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: message.map((m) => JSON.stringify(m)) },
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.tuple(fc.oneof(fc.constantFrom(...MESSAGE_TYPES), text), fc.jsonValue()).map(([type, rest]) => JSON.stringify(typeof rest === 'object' && rest !== null && !Array.isArray(rest) ? { ...rest, type } : { type, rest })),
  mutated(message.map((m) => Buffer.from(JSON.stringify(m)))).map((b) => b.toString('utf8')),
  fc.integer({ min: 1, max: 20000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
  fc.string({ unit: 'binary', maxLength: 80 }),
);

function checkParse(l: string): void {
  let m: ControlMessage;
  try {
    m = parseMessage(l);
  } catch (err) {
    assert.ok(err instanceof InvalidMessageError, `parseMessage threw ${String(err)}`);
    assert.match(err.message, /^(control message|unknown control message type)/);
    assert.ok(err.message.length <= 120, `an error message of ${err.message.length} characters (it is logged)`);
    return;
  }
  assert.ok((MESSAGE_TYPES as readonly string[]).includes(m.type), `a message of unknown type ${m.type}`);
  assert.deepEqual(parseMessage(encodeMessage(m).trim()), m, 'a parsed message does not round-trip');
}

type Event = ['message', ControlMessage] | ['invalid', string];

/** Pushes `pieces` into a channel over a real stream, as HTTP/2 DATA frames arrive, and records its events. */
async function channelEvents(pieces: Buffer[]): Promise<{ events: Event[]; destroyed: boolean }> {
  const stream = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
  const ch = new ControlChannel(stream);
  const events: Event[] = [];
  ch.on('message', (m) => events.push(['message', m]));
  ch.on('invalid', (e) => events.push(['invalid', e.message]));
  await new Promise((r) => setImmediate(r)); // the stream flows from the next tick
  for (const p of pieces) if (!stream.destroyed) stream.push(p);
  await new Promise((r) => setImmediate(r));
  return { events, destroyed: stream.destroyed };
}

const stream = fc.oneof(
  { weight: 8, arbitrary: fc.array(fc.tuple(line, fc.constantFrom('\n', '\r\n', '\n\n')), { maxLength: 5 }).map((ls) => Buffer.from(ls.map(([l, e]) => l + e).join(''))) },
  fc.array(line, { maxLength: 3 }).map((ls) => Buffer.from(ls.join('\n'))),
  randomBytes(),
  // Around the 256 KiB line limit (rare: each is a large input).
  fc.tuple(fc.constantFrom(256 * 1024 - 40, 256 * 1024 + 1, 300 * 1024), fc.boolean()).map(([n, nl]) => Buffer.from(JSON.stringify({ type: 'notice', message: 'x'.repeat(n) }) + (nl ? '\n' : ''))),
);

export const targets: FuzzTarget[] = [
  fuzzTarget({
    name: 'control-message',
    about: 'control-message parser: a known type or an Error saying what was wrong; valid messages round-trip',
    input: line,
    check: checkParse,
  }),
  fuzzTarget({
    name: 'control-channel',
    about: 'control channel (JSON lines): same messages and errors whole or split anywhere, UTF-8 included',
    input: fc.tuple(stream, cuts),
    check: async ([bytes, at]) => {
      const whole = await channelEvents([bytes]);
      const pieces = await channelEvents(split(bytes, at));
      assert.deepEqual(pieces, whole, 'the channel read the bytes split differently from the bytes whole');
    },
  }),
];
