import type { Transporter } from 'nodemailer';
import type { Clock } from '../lib/clock.ts';
import { randomToken } from '../lib/ids.ts';
import { requireEmail } from './emails.ts';
import type { LoginCodes } from './login-codes.ts';
import { hashSecret } from './sessions.ts';

// Email magic links. A link is good once, for ttlSeconds, and is bound to the login attempt
// that asked for it: the browser that asked holds an attempt cookie, and only there does the
// link sign in at once. Opened anywhere else (another device, or a mail scanner fetching
// links) it shows a confirmation page naming the email, and signs in only on a POST from
// that page — so a prefetch cannot burn the link, and nobody can be silently signed in to
// someone else's account by being sent their link (login CSRF).

export const MAGIC_VERIFY_PATH = '/login/email/verify';

export interface MagicLinkOptions {
  /** smtp://user:pass@host:port (smtps:// for implicit TLS). */
  smtpUrl: string;
  /** The From address, e.g. "tunn <login@example.com>". */
  from: string;
  ttlSeconds?: number;
  codes: LoginCodes;
  clock: Clock;
  relayUrl: string;
}

export interface MagicAttempt {
  /** Goes into the requesting browser's attempt cookie. */
  attempt: string;
}

export class MagicLinks {
  readonly #o: MagicLinkOptions;
  readonly #mail: Promise<Transporter>;
  readonly ttlSeconds: number;

  constructor(opts: MagicLinkOptions) {
    this.#o = opts;
    this.ttlSeconds = opts.ttlSeconds ?? 600;
    // nodemailer is loaded only by a relay configured with SMTP (it is a large part of the
    // idle memory of a relay that never sends mail). A failure surfaces on the first send.
    this.#mail = import('nodemailer').then((m) => m.createTransport(opts.smtpUrl));
    this.#mail.catch(() => {});
  }

  /** Sends the link; `returnTo` has been checked by the caller. Throws INVALID_INPUT for a bad email. */
  async send(opts: { email: string; returnTo: string }): Promise<MagicAttempt> {
    const email = requireEmail(opts.email);
    const attempt = randomToken(32);
    const code = await this.#o.codes.issue({ purpose: 'magic', host: new URL(this.#o.relayUrl).host, ttlSeconds: this.ttlSeconds, email, data: { returnTo: opts.returnTo, attempt: hashSecret(attempt) } });
    const link = `${this.#o.relayUrl}${MAGIC_VERIFY_PATH}?token=${encodeURIComponent(code)}`;
    const minutes = Math.round(this.ttlSeconds / 60);
    const mail = await this.#mail;
    await mail.sendMail({
      from: this.#o.from,
      to: email,
      subject: 'Sign in to tunn',
      text: `Open this link to sign in to tunn as ${email}:\n\n${link}\n\nIt works once, within ${minutes} minutes. If you did not ask to sign in, ignore this email.\n`,
      html: `<p>Open this link to sign in to tunn as <b>${email}</b>:</p><p><a href="${link}">Sign in to tunn</a></p><p>It works once, within ${minutes} minutes. If you did not ask to sign in, ignore this email.</p>`,
    });
    return { attempt };
  }

  /** The email and return URL of a still-valid link, and whether this browser asked for it. */
  async peek(token: string | undefined, attemptCookie: string | undefined): Promise<{ email: string; returnTo: string; sameBrowser: boolean } | undefined> {
    const c = await this.#o.codes.peek(token, 'magic');
    if (!c || !c.email) return undefined;
    return { email: c.email, returnTo: String(c.data.returnTo ?? '/'), sameBrowser: attemptCookie !== undefined && hashSecret(attemptCookie) === c.data.attempt };
  }

  /** Uses the link up; undefined when it is unknown, used or expired. */
  async consume(token: string | undefined): Promise<{ email: string; returnTo: string } | undefined> {
    const c = await this.#o.codes.consume(token, 'magic');
    if (!c || !c.email) return undefined;
    return { email: c.email, returnTo: String(c.data.returnTo ?? '/') };
  }

  async close(): Promise<void> {
    await this.#mail.then((m) => m.close(), () => {});
  }
}
