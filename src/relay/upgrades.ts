import { TunnError } from '../lib/errors.ts';
import { headerValues, wantsUpgrade, type MessageHead } from '../lib/http1.ts';

// Which protocol upgrades (RFC 9110 §7.8) the relay forwards to a tunnel's origin. After a
// 101 the relay passes bytes through unparsed, so it no longer sees requests: no identity
// header is set or stripped and no policy is checked. WebSocket is safe to forward (its frames
// carry no HTTP fields); other protocols only when the tunnel's owner opted in
// (`--allow-upgrade`). Upgrades to HTTP itself (h2c, HTTP/2.0, …) are never forwarded: the
// visitor's HTTP/2 requests would carry any Tunn-User-Email they like, unchecked.

export type UpgradeDecision =
  /** Not an upgrade request. */
  | { kind: 'none' }
  /** Forward with `Upgrade: <protocols>` (only the allowed ones) and `Connection: upgrade`. */
  | { kind: 'forward'; protocols: string }
  /**
   * Only HTTP upgrades were offered (h2c): forward the request as plain HTTP/1.1 without
   * Upgrade or HTTP2-Settings. A client offering h2c must accept an HTTP/1.1 answer (RFC 9113
   * §3.1 with RFC 7540 §3.2), so `curl --http2 http://…` keeps working.
   */
  | { kind: 'strip' }
  /** Refused: the client wants a protocol this tunnel does not forward (answer 400, naming the flag). */
  | { kind: 'refuse'; protocols: string[] };

/** Protocol names (before any /version) that are HTTP itself and can never be allowed. */
function isHttpUpgrade(name: string): boolean {
  return name === 'h2c' || name === 'h2' || name === 'http' || name.startsWith('h2-') || name.startsWith('h3');
}

/** The protocol name of an Upgrade token (`websocket`, `foo/2` → `foo`), lower-cased. */
function protocolName(token: string): string {
  const t = token.trim().toLowerCase();
  const slash = t.indexOf('/');
  return slash < 0 ? t : t.slice(0, slash);
}

/** What to do with a request's Upgrade; `allowed`: the tunnel's `--allow-upgrade` names. */
export function decideUpgrade(head: MessageHead, allowed: readonly string[] | undefined): UpgradeDecision {
  if (!wantsUpgrade(head)) return { kind: 'none' };
  const offered = headerValues(head, 'upgrade')
    .flatMap((v) => v.split(','))
    .map((t) => t.trim())
    .filter(Boolean);
  const pass: string[] = [];
  const refused: string[] = [];
  let http = false;
  for (const token of offered) {
    const name = protocolName(token);
    if (isHttpUpgrade(name)) http = true;
    else if (name === 'websocket' || allowed?.includes(name)) pass.push(token);
    else refused.push(token);
  }
  if (pass.length > 0) return { kind: 'forward', protocols: pass.join(', ') };
  if (refused.length > 0) return { kind: 'refuse', protocols: refused };
  return http ? { kind: 'strip' } : { kind: 'none' };
}

/**
 * Checks `--allow-upgrade` names (agent and relay both run it): protocol tokens, never an HTTP
 * version. Returns them lower-cased, or throws INVALID_INPUT saying what to do.
 */
export function parseAllowUpgrade(names: readonly unknown[]): string[] {
  const out: string[] = [];
  for (const raw of names) {
    if (typeof raw !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(raw.trim())) {
      throw new TunnError('INVALID_INPUT', `--allow-upgrade ${JSON.stringify(raw)}: expected a protocol name as sent in the Upgrade header, e.g. --allow-upgrade irc`);
    }
    const name = raw.trim().toLowerCase();
    if (isHttpUpgrade(name)) {
      throw new TunnError(
        'INVALID_INPUT',
        `--allow-upgrade ${name}: upgrades to HTTP/2 (h2c) are never forwarded, because the relay could not check the requests inside them; serve HTTP/2 to visitors through the relay's HTTPS instead`,
      );
    }
    if (!out.includes(name)) out.push(name);
  }
  return out;
}
