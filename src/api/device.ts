import { zValidator } from '@hono/zod-validator';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { z, type ZodType } from 'zod';
import { DEVICE_PATH, normaliseUserCode } from '../auth/device.ts';
import { esc } from '../auth/html.ts';
import type { Identity } from '../auth/identity.ts';
import { clientIp, type ApiEnv } from './http.ts';
import { pages, redirectTo, render } from './pages.ts';

// Device login for `tunn login` (RFC 8628). The two OAuth endpoints answer in RFC 8628's
// shape — { error: "authorization_pending" } etc. — rather than tunn's { error: { code } },
// so any OAuth device-flow client works against them:
//   POST /v1/auth/device        { client_name? }  → 200 DeviceStart
//   POST /v1/auth/device/token  { device_code }   → 200 { access_token, token_type, email }
//                                                  | 400 { error, error_description, interval? }
// Both accept JSON or application/x-www-form-urlencoded.
// The browser side is /device on the relay: sign in, type the code, check what asked, approve or deny.

// RFC 8628 clients send a form; the CLI sends JSON: both targets are validated (the one not
// sent reads as {}), and a refusal is in RFC 8628's shape (invalid_request).
const startBody = z.object({ client_name: z.string().max(200).optional() });
const tokenBody = z.object({ grant_type: z.string().max(200).optional(), device_code: z.string().max(200).optional() });

function describe(issues: readonly { path: PropertyKey[]; code: string }[]): string {
  return issues.map((i) => `"${i.path.join('.')}" ${i.code === 'too_big' ? 'is too long' : 'must be a string'}`).join('; ');
}

/** The JSON body (typed for the client), or the same fields from a form body (what RFC 8628 clients send). */
function oauth<S extends ZodType<Record<string, string | undefined>>>(schema: S) {
  const json = zValidator('json', schema, (result, c) => {
    if (!result.success) return c.json({ error: 'invalid_request' as const, error_description: describe(result.error.issues) }, 400);
  });
  const form: MiddlewareHandler<ApiEnv> = async (c, next) => {
    const type = (c.req.header('content-type') ?? '').toLowerCase();
    if (type.startsWith('application/x-www-form-urlencoded') || type.startsWith('multipart/form-data')) {
      const fields = await c.req.parseBody().catch(() => ({}));
      const r = await schema.safeParseAsync(Object.fromEntries(Object.entries(fields).filter(([, v]) => typeof v === 'string')));
      if (!r.success) return c.json({ error: 'invalid_request' as const, error_description: describe(r.error.issues) }, 400);
      c.req.addValidatedData('json', r.data as object);
    }
    await next();
  };
  return [json, form] as const;
}

const DESCRIPTIONS = {
  authorization_pending: 'waiting for the user to approve the code in the browser',
  slow_down: 'polling too fast; wait `interval` seconds between polls',
  expired_token: 'the code expired; run `tunn login` again',
  access_denied: 'the sign-in was denied in the browser',
  invalid_grant: 'unknown or already used device_code; run `tunn login` again',
} as const;

export function deviceApiRoutes(identity: Identity) {
  return new Hono<ApiEnv>()
    .post('/', ...oauth(startBody), async (c) => {
      const rl = identity.rateLimiter.take(`device-start\0${clientIp(c)}`, 10);
      if (!rl.ok) return c.json({ error: 'slow_down' as const, error_description: `too many logins started; retry in ${rl.retryAfterSeconds} s` }, 429, { 'retry-after': String(rl.retryAfterSeconds) });
      const p = c.req.valid('json');
      return c.json(await identity.devices.start({ clientName: p.client_name, ip: clientIp(c) }));
    })
    .post('/token', ...oauth(tokenBody), async (c) => {
      const p = c.req.valid('json');
      if (p.grant_type && p.grant_type !== 'urn:ietf:params:oauth:grant-type:device_code') {
        return c.json({ error: 'unsupported_grant_type' as const, error_description: 'use urn:ietf:params:oauth:grant-type:device_code' }, 400);
      }
      const r = await identity.devices.poll(p.device_code);
      if (r.ok) return c.json({ access_token: r.token, token_type: 'Bearer' as const, email: r.email }, 200, { 'cache-control': 'no-store' });
      return c.json({ error: r.error, error_description: DESCRIPTIONS[r.error], ...(r.interval ? { interval: r.interval } : {}) }, 400, { 'cache-control': 'no-store' });
    });
}

// The browser side defends against device-code phishing (RFC 8628 §5.4): anyone can start a
// code with any client_name and send a signed-in victim a link to it; one click on Approve
// used to hand them a token for the victim's account. So a code is never taken from the link:
// the visitor types the code their own terminal shows (a link's user_code is ignored, and not
// shown), then sees what asked (client_name as untrusted text, the address it came from) and
// a warning that approving gives a terminal full access, before Approve.
const CODE_FORM_NOTE = 'Type the code shown in the terminal where <strong>you</strong> ran <code>tunn login</code>. If someone sent you a link or a code to enter here, do not: whoever started it would get access to your account.';

export function devicePageRoutes(identity: Identity) {
  const p = pages(identity);

  /** The page where the visitor types the code; `banner` (plain text) says what was wrong. */
  function codeForm(c: Context<ApiEnv>, status: number, title: string, banner?: string): Response {
    return render(
      c,
      status,
      title,
      `<p>${CODE_FORM_NOTE}</p><form method="post" action="${DEVICE_PATH}">${p.tokenField(c)}<label>Code <input name="user_code" autocomplete="off" autocapitalize="characters" spellcheck="false" placeholder="BCDF-GHJK" required></label> <button type="submit" name="action" value="check">Continue</button></form>`,
      { banner },
    );
  }

  return new Hono<ApiEnv>()
    .use(p.sameOrigin)
    .get(DEVICE_PATH, async (c) => {
      const session = await p.currentSession(c);
      // The link's query (a user_code) is dropped on the way to sign-in too.
      if (!session) return redirectTo(`/login?return=${encodeURIComponent(DEVICE_PATH)}`);
      const linked = c.req.query('user_code') !== undefined;
      return codeForm(c, 200, 'Sign in a device', linked ? 'A link cannot fill in the code for you: type the code your own terminal shows.' : undefined);
    })
    .post(DEVICE_PATH, async (c) => {
      const session = await p.currentSession(c);
      if (!session) return redirectTo(`/login?return=${encodeURIComponent(DEVICE_PATH)}`);
      const f = await c.req.parseBody();
      // Checking and approving a code happen only from this page, in this session (same
      // origin is checked by p.sameOrigin): another site cannot post a code for the visitor.
      if (!p.hasFormToken(c, f)) return p.staleFormPage(c, DEVICE_PATH);
      const typed = typeof f.user_code === 'string' ? f.user_code : '';
      const code = normaliseUserCode(typed);
      const action = f.action === 'deny' ? 'deny' : f.action === 'approve' ? 'approve' : f.action === 'check' ? 'check' : undefined;
      if (!code || !action) return codeForm(c, 400, 'Enter the code', typed ? `"${typed.slice(0, 40)}" is not a device code: it has 8 letters, like BCDF-GHJK. Type the code your terminal shows.` : 'No code was entered: type the code your terminal shows.');
      // Typed codes are guessable only by volume (RFC 8628 §5.1): a few tries a minute per account.
      const rl = identity.rateLimiter.take(`device-code\0${session.accountId}`, 10);
      if (!rl.ok) return codeForm(c, 429, 'Too many codes tried', `Too many device codes were tried from this account: wait ${rl.retryAfterSeconds} s, then type the code your terminal shows.`);
      const pending = await identity.devices.pending(code);
      if (!pending) return codeForm(c, 400, 'Unknown or expired code', `The code ${code} is not waiting for approval: check it against your terminal, or run tunn login again for a new one.`);
      if (action === 'check') {
        return render(
          c,
          200,
          'Sign in a terminal?',
          `<p>The code <span class="code">${esc(pending.userCode)}</span> was started by a program that calls itself <q>${esc(pending.clientName)}</q> (its own words: tunn cannot check them) from ${esc(pending.ip || 'an unknown address')}.</p>
<p><strong>Approving gives that terminal full access to your tunn account, ${esc(session.email)}</strong>: your tunnels, tokens, groups and domains. Approve only if you ran <code>tunn login</code> yourself just now and it shows this code.</p>
<form method="post" action="${DEVICE_PATH}">${p.hidden('user_code', pending.userCode)}${p.tokenField(c)}<button type="submit" name="action" value="approve">Approve</button> <button type="submit" name="action" value="deny" class="secondary">Deny</button></form>`,
        );
      }
      if (!(await identity.devices.decide(code, action, session))) return codeForm(c, 400, 'Unknown or expired code', 'This code is no longer waiting for approval: run tunn login again for a new one.');
      return action === 'approve'
        ? render(c, 200, 'Device signed in', `<p>The device is signed in as <strong>${esc(session.email)}</strong>. You can close this tab and return to your terminal.</p>`)
        : render(c, 200, 'Denied', '<p>The device was not signed in.</p>');
    });
}
