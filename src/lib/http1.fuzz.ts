import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cuts, mutated, randomBytes, split, fuzzTarget, type FuzzTarget } from './fuzz.ts';
import { Http1Framer, HttpParseError, wantsUpgrade, type MessageHead } from './http1.ts';

// Fuzz targets of the HTTP/1 framer (http1.ts), as the relay and the agent drive it. Properties:
// - it throws nothing but HttpParseError (the gateway answers 400/431/501 for those only);
// - feeding the input in pieces split anywhere gives what feeding it whole gives;
// - the bytes held for an incomplete head stay ≤ maxHeadSize;
// - every head and body range lies inside the chunk it is reported in;
// - a valid message sequence (grammar-built) is framed exactly: heads, fields and body bytes.
// Hangs and unbounded allocation are caught by the driver (fuzz.ts, fuzz-worker.ts).

const MAX_HEAD = 2048;

/** A latin1 string (one byte per character on the wire). */
const latin1 = (maxLength: number, minLength = 0): fc.Arbitrary<string> => fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), minLength, maxLength });
const tokenChars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const token = fc.string({ unit: fc.constantFrom(...tokenChars), minLength: 1, maxLength: 10 });
/** A field value without leading/trailing whitespace: visible ASCII, SP/HTAB inside, obs-text. */
const fieldValue = fc
  .string({ unit: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)) }, fc.constantFrom(' ', '\t', '\u00e9', '\u00ff')), maxLength: 24 })
  .map((v) => v.replace(/^[ \t]+|[ \t]+$/g, ''));
/** Names the framer or the relay treat specially, and any token. */
const fieldName = fc.oneof(
  fc.constantFrom('Host', 'Content-Length', 'content-length', 'Transfer-Encoding', 'TRANSFER-ENCODING', 'Connection', 'Upgrade', 'Tunn-User-Email', 'X-Forwarded-For', 'Trailer'),
  token,
);
const framingNames = new Set(['content-length', 'transfer-encoding', 'connection', 'upgrade']);
const plainField = fc.tuple(fieldName, fieldValue).filter(([n]) => !framingNames.has(n.toLowerCase()));
const anyField = fc.oneof(
  fc.tuple(fieldName, fieldValue),
  fc.tuple(fc.constantFrom('Content-Length', 'content-length'), fc.constantFrom('0', '1', '5', '00', '5, 5', '-1', '1x', ' 7 ', '999999999999999999', '')),
  fc.tuple(fc.constantFrom('Transfer-Encoding', 'transfer-encoding'), fc.constantFrom('chunked', 'Chunked', 'gzip, chunked', 'chunked, gzip', 'gzip', ',', ' chunked ', 'identity')),
  fc.tuple(fc.constant('Connection'), fc.constantFrom('Upgrade', 'close', 'keep-alive', 'upgrade, close')),
  fc.tuple(fc.constant('Upgrade'), fc.constantFrom('websocket', 'h2c')),
);
const method = fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'CONNECT', 'PATCH'), token);
const target = fc.oneof(
  fc.constantFrom('/', '*', '/a?b=c', 'http://x.example/p', 'x.example:443', '//evil.example/'),
  fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 30 }).map((p) => '/' + p),
);

interface Body {
  /** The body on the wire (chunked framing included), latin1. */
  wire: string;
  fields: [string, string][];
}

/** A chunked body: chunks with optional extensions, the last chunk, optional trailers. */
const chunkedBody: fc.Arbitrary<Body> = fc
  .tuple(
    fc.array(fc.tuple(latin1(40, 1), fc.constantFrom('', ';a=1', ';x', ' ;q="v"'), fc.boolean()), { maxLength: 4 }),
    fc.array(plainField, { maxLength: 2 }),
    fc.constantFrom('', ';last'),
  )
  .map(([chunks, trailers, lastExt]) => {
    let wire = '';
    for (const [data, ext, upper] of chunks) {
      const size = data.length.toString(16);
      wire += `${upper ? size.toUpperCase() : size}${ext}\r\n${data}\r\n`;
    }
    wire += `0${lastExt}\r\n${trailers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
    return { wire, fields: [['Transfer-Encoding', 'chunked']] as [string, string][] };
  });
const lengthBody: fc.Arbitrary<Body> = latin1(60).map((data) => ({ wire: data, fields: [['Content-Length', String(Buffer.byteLength(data, 'latin1'))]] }));
const noBody: fc.Arbitrary<Body> = fc.constant({ wire: '', fields: [] });

interface Expected {
  method: string;
  target: string;
  status: number;
  reason: string;
  versionMinor: 0 | 1;
  headers: [string, string][];
  body: string;
}

function head(first: string, fields: [string, string][]): string {
  return `${first}\r\n${fields.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
}

/** A valid request: every field is kept as is, framing from its body. */
const validRequest: fc.Arbitrary<{ wire: string; expected: Expected; method: string }> = fc
  .tuple(method, target, fc.constantFrom<0 | 1>(0, 1), fc.array(plainField, { maxLength: 5 }), fc.oneof(noBody, lengthBody, chunkedBody), fc.nat({ max: 3 }))
  .filter(([, , v, , body]) => v === 1 || !body.fields.some(([n]) => n === 'Transfer-Encoding'))
  .map(([m, t, v, fields, body, at]) => {
    const all = [...fields.slice(0, at), ...body.fields, ...fields.slice(at)];
    return { wire: head(`${m} ${t} HTTP/1.${v}`, all) + body.wire, expected: { method: m, target: t, status: 0, reason: '', versionMinor: v, headers: all, body: body.wire }, method: '' };
  });

/** A valid response answering `method`; 1xx, 204, 304 and answers to HEAD carry no body. */
const validResponse: fc.Arbitrary<{ wire: string; expected: Expected; method: string }> = fc
  .tuple(
    fc.oneof(fc.constantFrom(100, 103, 200, 204, 304, 404), fc.integer({ min: 100, max: 599 })),
    fc.constantFrom('', 'OK', 'Not Found', 'a reason with spaces'),
    fc.constantFrom('GET', 'POST', 'HEAD'),
    fc.constantFrom<0 | 1>(0, 1),
    fc.array(plainField, { maxLength: 4 }),
    fc.oneof(lengthBody, chunkedBody),
  )
  .filter(([status]) => status !== 101)
  .map(([status, reason, m, v, fields, body]) => {
    const bodiless = status < 200 || status === 204 || status === 304 || m === 'HEAD';
    const all = bodiless ? fields : [...fields, ...body.fields];
    const first = `HTTP/1.${v} ${status}${reason ? ' ' + reason : ''}`;
    return { wire: head(first, all) + (bodiless ? '' : body.wire), expected: { method: '', target: '', status, reason, versionMinor: v, headers: all, body: bodiless ? '' : body.wire }, method: m };
  });

interface Run {
  kind: 'request' | 'response';
  /** Responses: fields kept (the agent's log) or only the framing ones (the relay). */
  keepFields: boolean;
  /** What the consumer does after an upgrade request or a 101: go raw (accepted) or go on (declined). */
  acceptUpgrade: boolean;
  /** Responses: the methods of the requests they answer, in order. */
  methods: string[];
}

interface Outcome {
  messages: { head: Omit<MessageHead, 'size'>; size: number; body: string }[];
  raw: string;
  error?: string;
  finished?: boolean;
}

/** Feeds `pieces` as the relay does and records what the framer reports; asserts the per-call invariants. */
function drive(run: Run, pieces: Buffer[]): Outcome {
  const out: Outcome = { messages: [], raw: '' };
  const methods = [...run.methods];
  let cur: Outcome['messages'][number] | undefined;
  let upgrade = false;
  let chunkLen = 0;
  const inChunk = (s: number, e: number): void => assert.ok(s >= 0 && s <= e && e <= chunkLen, `range [${s}, ${e}) outside a chunk of ${chunkLen}`);
  const framer = new Http1Framer(
    { kind: run.kind, maxHeadSize: MAX_HEAD, keepFields: run.keepFields, nextRequestMethod: () => methods.shift() },
    {
      onHead: (h, _c, end) => {
        inChunk(0, end);
        assert.ok(h.size <= MAX_HEAD, `a head of ${h.size} bytes passed the ${MAX_HEAD} limit`);
        const { size, ...rest } = h;
        cur = { head: rest, size, body: '' };
        upgrade = run.kind === 'request' ? wantsUpgrade(h) : h.status === 101;
        if (upgrade && run.kind === 'request') framer.pauseAfterMessage();
      },
      onBody: (c, s, e) => {
        inChunk(s, e);
        assert.ok(cur, 'body bytes outside a message');
        cur.body += c.toString('latin1', s, e);
      },
      onMessageEnd: (_c, end) => {
        inChunk(0, end);
        assert.ok(cur, 'a message ended that never began');
        out.messages.push(cur);
        cur = undefined;
        if (upgrade && run.kind === 'response' && run.acceptUpgrade) framer.switchToRaw();
      },
      onRaw: (c, s) => {
        inChunk(s, c.length);
        out.raw += c.toString('latin1', s);
      },
    },
  );
  try {
    for (const piece of pieces) {
      chunkLen = piece.length;
      let off = 0;
      while (off < piece.length) {
        const used = framer.execute(off === 0 ? piece : piece.subarray(off));
        assert.ok(used >= 0 && used <= piece.length - off, `execute consumed ${used} of ${piece.length - off}`);
        chunkLen = piece.length - off - used;
        off += used;
        if (off < piece.length) {
          // Paused after an upgrade request: the gateway goes raw (101) or resumes (declined).
          if (run.acceptUpgrade) framer.switchToRaw();
          else framer.resume();
        }
      }
      assert.ok(framer.heldBytes <= MAX_HEAD, `${framer.heldBytes} bytes held for a head (limit ${MAX_HEAD})`);
    }
    out.finished = framer.finish();
  } catch (err) {
    if (!(err instanceof HttpParseError)) throw err;
    assert.ok(err.message.length > 0 && [400, 431, 501].includes(err.status), `a parse error without a message or status: ${err.status} ${err.message}`);
    out.error = 'HttpParseError';
  }
  return out;
}

/** The outcome of the input whole must be the outcome of the input in pieces. */
function wholeEqualsPieces(run: Run, input: Buffer, at: number[]): void {
  const whole = drive(run, [input]);
  const pieces = drive(run, split(input, at));
  assert.deepEqual(pieces, whole, 'feeding the input in pieces framed it differently from feeding it whole');
}

const anyHeadText = (kind: 'request' | 'response'): fc.Arbitrary<Buffer> =>
  fc
    .tuple(
      kind === 'request' ? fc.tuple(method, target, fc.constantFrom('1.1', '1.0', '1.2', '2')).map(([m, t, v]) => `${m} ${t} HTTP/${v}`) : fc.tuple(fc.constantFrom('1.1', '1.0'), fc.integer({ min: 0, max: 999 }), fc.constantFrom('', ' OK')).map(([v, s, r]) => `HTTP/${v} ${s}${r}`),
      fc.array(anyField, { maxLength: 6 }),
      fc.oneof(chunkedBody.map((b) => b.wire), latin1(40)),
    )
    .map(([first, fields, body]) => Buffer.from(head(first, fields) + body, 'latin1'));

/** Sequences of messages: valid ones, loosely grammar-built ones, mutations of both, random bytes. */
function messages(kind: 'request' | 'response'): fc.Arbitrary<Buffer> {
  const valid = kind === 'request' ? validRequest : validResponse;
  const validSeq = fc.array(valid, { minLength: 1, maxLength: 3 }).map((ms) => Buffer.from(ms.map((m) => m.wire).join(''), 'latin1'));
  const loose = fc.array(anyHeadText(kind), { minLength: 1, maxLength: 3 }).map((bs) => Buffer.concat(bs));
  return fc.oneof(validSeq, loose, mutated(validSeq), mutated(loose), randomBytes(), fc.constant(Buffer.from('x'.repeat(MAX_HEAD + 10))));
}

const runOf = (kind: 'request' | 'response'): fc.Arbitrary<Run> =>
  fc.record({ kind: fc.constant(kind), keepFields: fc.boolean(), acceptUpgrade: fc.boolean(), methods: fc.array(fc.constantFrom('GET', 'HEAD', 'POST', 'CONNECT'), { maxLength: 4 }) });

export const targets: FuzzTarget[] = [
  fuzzTarget({
    name: 'http1-request',
    about: 'HTTP/1 request framer: only HttpParseError, pieces == whole, held ≤ maxHeadSize',
    input: fc.tuple(runOf('request'), messages('request'), cuts),
    check: ([run, input, at]: [Run, Buffer, number[]]) => wholeEqualsPieces(run, input, at),
  }),
  fuzzTarget({
    name: 'http1-response',
    about: 'HTTP/1 response framer (fields kept or passed through): only HttpParseError, pieces == whole, held ≤ maxHeadSize',
    input: fc.tuple(runOf('response'), messages('response'), cuts),
    check: ([run, input, at]: [Run, Buffer, number[]]) => wholeEqualsPieces(run, input, at),
  }),
  fuzzTarget({
    name: 'http1-valid',
    about: 'HTTP/1 framer on valid requests and responses split anywhere: framed exactly as generated',
    input: fc.oneof(
      fc.tuple(fc.constant('request' as const), fc.array(validRequest, { minLength: 1, maxLength: 4 }), fc.boolean(), cuts),
      fc.tuple(fc.constant('response' as const), fc.array(validResponse, { minLength: 1, maxLength: 4 }), fc.boolean(), cuts),
    ),
    check: ([kind, ms, keepFields, at]: ['request' | 'response', { wire: string; expected: Expected; method: string }[], boolean, number[]]) => {
      const input = Buffer.from(ms.map((m) => m.wire).join(''), 'latin1');
      const methods = ms.filter((m) => m.expected.status < 100 || m.expected.status >= 200).map((m) => m.method);
      const out = drive({ kind, keepFields, acceptUpgrade: false, methods }, split(input, at));
      assert.equal(out.error, undefined, 'a valid message sequence was refused');
      const keep = kind === 'request' || keepFields;
      assert.deepEqual(
        out.messages.map((m) => ({ ...m.head, names: undefined, body: m.body })),
        ms.map((m) => ({ ...m.expected, headers: keep ? m.expected.headers : [], names: undefined })),
      );
      assert.equal(out.finished, true);
    },
  }),
];
