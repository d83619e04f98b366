import { once } from 'node:events';
import tls from 'node:tls';

/**
 * A TLS handshake with `servername` at host:port (ALPN http/1.1): whether `ca` verifies the served
 * certificate, and its names; a failed handshake is `authorized: false` with the error's message.
 */
export async function handshake(host: string, port: number, servername: string, ca: string): Promise<{ authorized: boolean; san?: string; error?: string }> {
  const s = tls.connect({ host, port, servername, ca, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
  try {
    await Promise.race([once(s, 'secureConnect'), once(s, 'error').then(([e]) => Promise.reject(e as Error))]);
    return { authorized: s.authorized, san: s.getPeerCertificate().subjectaltname, error: s.authorizationError ? String(s.authorizationError) : undefined };
  } catch (err) {
    return { authorized: false, error: (err as Error).message };
  } finally {
    s.destroy();
  }
}
