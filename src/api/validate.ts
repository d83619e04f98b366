import { zValidator } from '@hono/zod-validator';
import type { Context } from 'hono';
import type { z, ZodType } from 'zod';
import { TunnError } from '../lib/errors.ts';

// The one way /v1 routes take input: zod schemas through @hono/zod-validator, so the typed
// client (`hc<ApiApp>`) knows every body, query and path parameter. A refusal is the API's
// usual 400 { error: { code: 'INVALID_INPUT', message } }, naming the field and what it must be.

type Issue = z.core.$ZodIssue;

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  boolean: 'true or false',
  array: 'an array',
  object: 'a JSON object',
};

function quoted(input: unknown): string {
  const s = typeof input === 'string' ? input : JSON.stringify(input);
  return `"${(s ?? String(input)).slice(0, 80)}"`;
}

/** One sentence per issue: `"emails" must be an array of strings`, `"name" is missing (a string)`. */
export function describeIssue(issue: Issue, target: string): string {
  const path = issue.path.map(String).join('.');
  const field = path ? `"${path}"` : target === 'json' ? 'the request body' : 'the request';
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'invalid_type': {
      const want = EXPECTED[issue.expected] ?? issue.expected;
      if (input === undefined) return `${field} is missing (${want})`;
      if (issue.path.at(-1) !== undefined && typeof issue.path.at(-1) === 'number') return `"${issue.path.slice(0, -1).join('.')}" must be an array of ${issue.expected}s`;
      return `${field} must be ${want}`;
    }
    case 'too_small':
      if (issue.origin === 'string') return Number(issue.minimum) <= 1 ? `${field} must be a non-empty string` : `${field} must have at least ${issue.minimum} characters`;
      if (issue.origin === 'array') return `${field} needs at least ${issue.minimum} entr${Number(issue.minimum) === 1 ? 'y' : 'ies'}`;
      return `${field} must be at least ${issue.minimum}${input !== undefined ? `, not ${quoted(input)}` : ''}`;
    case 'too_big':
      if (issue.origin === 'string') return `${field} is too long (at most ${issue.maximum} characters)`;
      if (issue.origin === 'array') return `${field} has too many entries (at most ${issue.maximum})`;
      return `${field} must be at most ${issue.maximum}${input !== undefined ? `, not ${quoted(input)}` : ''}`;
    case 'invalid_value':
      return `${field} must be one of: ${issue.values.map(String).join(', ')}${input !== undefined ? `, not ${quoted(input)}` : ''}`;
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}${path ? ` in ${field}` : ''}`;
    default:
      // Custom checks (refine, format, regex) carry their own sentence, written for the user.
      return issue.message.startsWith('Invalid') ? `${field} is not valid${input !== undefined ? `: ${quoted(input)}` : ''}` : `${field} ${issue.message}`;
  }
}

const hook = (result: { success: boolean; error?: { issues: Issue[] }; target: string }): void => {
  if (result.success || !result.error) return;
  throw new TunnError('INVALID_INPUT', result.error.issues.map((i) => describeIssue(i, result.target)).join('; '));
};

// Issues keep the input, so a message can quote what was sent.
const options = { validationFunction: <S extends ZodType>(schema: S, value: unknown) => schema.safeParseAsync(value, { reportInput: true }) };

/** A JSON body. A body that is not JSON, or sent as another media type, is refused with what to send instead. */
export function jsonBody<S extends ZodType>(schema: S) {
  const inner = zValidator('json', schema, hook, options as never);
  const outer = (async (c: Context, next: () => Promise<void>) => {
    // An empty body is {} (curl -X POST sends no length at all); any other must be JSON.
    const text = c.req.raw.body ? await c.req.text() : '';
    if (text.trim() === '') {
      // (hono keeps each body reading as a promise here, whatever its type says)
      (c.req.bodyCache as Record<string, unknown>).text = Promise.resolve('{}');
    } else {
      const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (!/^application\/([\w.-]+\+)?json$/.test(type)) {
        throw new TunnError('INVALID_INPUT', `send the request body as JSON with Content-Type: application/json (got ${type ? `"${type.slice(0, 60)}"` : 'no Content-Type'})`);
      }
      try {
        JSON.parse(text);
      } catch (err) {
        throw new TunnError('INVALID_INPUT', `the request body is not valid JSON (${(err as Error).message.slice(0, 120)})`);
      }
    }
    return inner(c, next);
  }) as unknown as typeof inner;
  return outer;
}

/** The query string. */
export function query<S extends ZodType>(schema: S) {
  return zValidator('query', schema, hook, options as never);
}

/** The path parameters. */
export function params<S extends ZodType>(schema: S) {
  return zValidator('param', schema, hook, options as never);
}
