import { Hono, type Context } from 'hono';
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
// The browser side is /device on the relay: sign in, check the code, approve or deny.

async function params(c: Context<ApiEnv>): Promise<Record<string, string>> {
  const type = c.req.header('content-type') ?? '';
  try {
    const raw = type.includes('json') ? ((await c.req.json()) as Record<string, unknown>) : await c.req.parseBody();
    return Object.fromEntries(Object.entries(raw ?? {}).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
  } catch {
    return {};
  }
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
    .post('/', async (c) => {
      const rl = identity.rateLimiter.take(`device-start\0${clientIp(c)}`, 10);
      if (!rl.ok) return c.json({ error: 'slow_down' as const, error_description: `too many logins started; retry in ${rl.retryAfterSeconds} s` }, 429, { 'retry-after': String(rl.retryAfterSeconds) });
      const p = await params(c);
      return c.json(await identity.devices.start({ clientName: p.client_name, ip: clientIp(c) }));
    })
    .post('/token', async (c) => {
      const p = await params(c);
      if (p.grant_type && p.grant_type !== 'urn:ietf:params:oauth:grant-type:device_code') {
        return c.json({ error: 'unsupported_grant_type' as const, error_description: 'use urn:ietf:params:oauth:grant-type:device_code' }, 400);
      }
      const r = await identity.devices.poll(p.device_code);
      if (r.ok) return c.json({ access_token: r.token, token_type: 'Bearer' as const, email: r.email }, 200, { 'cache-control': 'no-store' });
      return c.json({ error: r.error, error_description: DESCRIPTIONS[r.error], ...(r.interval ? { interval: r.interval } : {}) }, 400, { 'cache-control': 'no-store' });
    });
}

export function devicePageRoutes(identity: Identity) {
  const p = pages(identity);
  return new Hono<ApiEnv>()
    .use(p.sameOrigin)
    .get(DEVICE_PATH, async (c) => {
      const raw = c.req.query('user_code');
      const session = await p.currentSession(c);
      if (!session) return redirectTo(`/login?return=${encodeURIComponent(DEVICE_PATH + (raw ? `?user_code=${encodeURIComponent(raw)}` : ''))}`);
      if (!raw) {
        return render(c, 200, 'Sign in a device', `<p>Enter the code shown in your terminal.</p><form method="get" action="${DEVICE_PATH}"><input name="user_code" autocomplete="off" placeholder="BCDF-GHJK" required> <button type="submit">Continue</button></form>`);
      }
      const pending = await identity.devices.pending(raw);
      if (!pending) return render(c, 400, 'Unknown or expired code', `<p>The code ${esc(raw)} is not waiting for approval. Run <code>tunn login</code> again for a new one.</p>`);
      return render(
        c,
        200,
        'Sign in a device?',
        `<p>Confirm that this code matches the one shown in your terminal:</p><p class="code">${esc(pending.userCode)}</p>
<p class="muted">Requested by ${esc(pending.clientName)} from ${esc(pending.ip || 'an unknown address')}. Approving gives it access to your tunn account, <strong>${esc(session.email)}</strong>.</p>
<form method="post" action="${DEVICE_PATH}">${p.hidden('user_code', pending.userCode)}${p.tokenField(c)}<button type="submit" name="action" value="approve">Approve</button> <button type="submit" name="action" value="deny">Deny</button></form>`,
      );
    })
    .post(DEVICE_PATH, async (c) => {
      const session = await p.currentSession(c);
      if (!session) return redirectTo(`/login?return=${encodeURIComponent(DEVICE_PATH)}`);
      const f = await c.req.parseBody();
      // Approving hands a token for this account to whoever started the code: only from the
      // page above, in this session (same origin is checked by p.sameOrigin).
      if (!p.hasFormToken(c, f)) return p.staleFormPage(c, `${DEVICE_PATH}${typeof f.user_code === 'string' ? `?user_code=${encodeURIComponent(f.user_code)}` : ''}`);
      const code = typeof f.user_code === 'string' ? normaliseUserCode(f.user_code) : undefined;
      const action = f.action === 'deny' ? 'deny' : f.action === 'approve' ? 'approve' : undefined;
      if (!code || !action) return render(c, 400, 'Nothing to confirm', '<p>The form was incomplete. Start again from your terminal.</p>');
      if (!(await identity.devices.decide(code, action, session))) return render(c, 400, 'Unknown or expired code', '<p>This code is no longer waiting for approval. Run <code>tunn login</code> again.</p>');
      return action === 'approve'
        ? render(c, 200, 'Device signed in', `<p>The device is signed in as <strong>${esc(session.email)}</strong>. You can close this tab and return to your terminal.</p>`)
        : render(c, 200, 'Denied', '<p>The device was not signed in.</p>');
    });
}
