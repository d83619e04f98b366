import { errorMessage, TunnError } from '../lib/errors.ts';

// What the agent says when it cannot reach the relay, and which of those errors are
// permanent: retrying cannot fix an unknown host or a certificate the agent does not trust,
// so before the relay was ever reached the agent stops at once and says what to do.
// Refused, reset and timed-out connections (a relay restarting, a network blip) keep the
// back-off; so does everything once the agent has been online (networks change: a laptop
// on a captive portal sees untrusted certificates until it signs in).

/** Certificate errors that mean "this agent does not trust the relay's certificate". */
const UNTRUSTED = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_UNTRUSTED', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** The error to stop with if `err` cannot go away by retrying; undefined for transient ones. */
export function permanentConnectError(err: NodeJS.ErrnoException, relay: string): TunnError | undefined {
  const code = err.code ?? '';
  if (code === 'ENOTFOUND') {
    return new TunnError('RELAY_NOT_FOUND', `relay host ${relay} not found (no DNS record): check the host in --relay (or TUNN_RELAY, or the relay saved by \`tunn login\`)`);
  }
  if (UNTRUSTED.has(code)) {
    const expiry = code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID' ? `the relay's certificate is not valid now (${code}): check the relay's certificate and this machine's clock` : `this agent does not trust the relay's certificate (${code}): if the relay uses its dev CA or a private CA, pass that CA certificate with --relay-ca FILE (\`tunn relay --dev\` prints its path)`;
    return new TunnError('RELAY_CERT_UNTRUSTED', `cannot connect to ${relay}: ${expiry}`);
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new TunnError('RELAY_CERT_UNTRUSTED', `the certificate of ${relay} is for other names (${(err as { reason?: string }).reason ?? code}): check the host in --relay`);
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'NOT_A_RELAY') {
    return new TunnError('RELAY_NOT_A_RELAY', `${relay} does not answer as a tunn relay (${code === 'NOT_A_RELAY' ? 'no tunn/1 protocol' : 'not TLS'}): check the port in --relay (the relay's HTTPS port)`);
  }
  return undefined;
}

/** One line for a connect error the agent retries through. */
export function describeConnectError(err: NodeJS.ErrnoException, relay: string, name: string): string {
  switch (err.code) {
    // What a relay answers for a name it has no certificate for (e.g. its CA is down at start).
    case 'ERR_SSL_SSL/TLS_ALERT_HANDSHAKE_FAILURE':
    case 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE':
      return `relay ${relay} refused the TLS handshake (alert: handshake failure): most likely it has no certificate for ${name} yet; a relay keeps requesting its certificate (its log says why it has none), and this agent keeps retrying`;
    case 'ECONNREFUSED':
      return `relay ${relay} refused the connection (is it running?)`;
    case 'ENOTFOUND':
      return `relay host ${relay} not found`;
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return `cannot verify the relay's certificate (${err.code}); pass the relay's CA with --relay-ca`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `the relay's certificate is not for ${relay}`;
    default:
      if (err.code?.startsWith('ERR_SSL_')) return `TLS with relay ${relay} failed (${err.code})`;
      return `relay ${relay}: ${errorMessage(err).split('\n')[0]}`;
  }
}
