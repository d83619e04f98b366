import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { ACME_TLS_ALPN, type TlsAlpn01Solver } from '../../acme/tls-alpn01.ts';
import { TunnError } from '../../lib/errors.ts';

// TLS-ALPN-01 (RFC 8737) at the agent, for a custom domain whose TLS ends there: the relay
// routes a ClientHello offering ALPN `acme-tls/1` for that host to the agent (an
// `acme-tls-alpn` stream), and the agent answers with the challenge certificate its ACME
// order is presenting (src/acme's TlsAlpn01Solver), negotiates acme-tls/1 and closes: the
// validator reads nothing else (RFC 8737 §3).

export function answerTlsAlpn01(raw: Duplex, solver: TlsAlpn01Solver, onError?: (err: TunnError) => void): void {
  const tls = new TLSSocket(raw, {
    isServer: true,
    ALPNProtocols: [ACME_TLS_ALPN],
    SNICallback: (name, cb) => {
      const ctx = solver.secureContext(name);
      if (ctx) cb(null, ctx);
      else cb(new TunnError('NOT_FOUND', `no TLS-ALPN-01 challenge is being presented for "${name.slice(0, 253)}" at this agent`));
    },
  });
  const close = (): void => {
    tls.destroy();
    raw.destroy();
  };
  tls.once('error', (err) => {
    onError?.(err instanceof TunnError ? err : new TunnError('CERT_ISSUE_FAILED', `answering a TLS-ALPN-01 validation: ${err.message}`, { cause: err }));
    close();
  });
  tls.once('secure', () => tls.end());
  tls.once('close', close);
  tls.resume();
}
