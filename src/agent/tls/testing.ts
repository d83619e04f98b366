import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueLeaf, type KeyAndCert } from '../../certs/dev-ca.ts';

// Test helpers for agent-side TLS: a private CA and leaves, and a loopback "passthrough" that
// hands each accepted TCP socket (the visitor's raw TLS bytes) to a callback, as a relay's
// `tls` stream would.

export async function testCa(): Promise<KeyAndCert> {
  return createCa('tunn agent-tls test CA', 30);
}

export async function leaf(ca: KeyAndCert, names: string[], days = 30): Promise<{ chainPem: string; keyPem: string }> {
  const l = await issueLeaf(ca, names, days);
  return { chainPem: l.certPem, keyPem: l.keyPem };
}

/** A client CA and a client certificate from it (EKU clientAuth), made with openssl. */
export function clientCertificate(cn: string): { caPem: string; chainPem: string; keyPem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-mtls-'));
  const run = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  try {
    run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=${cn} CA`);
    run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'c.key', '-out', 'c.csr', '-subj', `/CN=${cn}`);
    writeFileSync(join(dir, 'ext'), 'extendedKeyUsage=clientAuth\n');
    run('x509', '-req', '-in', 'c.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'c.pem', '-days', '2', '-extfile', 'ext');
    const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
    return { caPem: read('ca.pem'), chainPem: read('c.pem'), keyPem: read('c.key') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function passthrough(onSocket: (s: Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const srv = createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    onSocket(s);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

/** A TLS client to the passthrough; resolves once the handshake is done. */
export async function visitor(port: number, opts: ConnectionOptions): Promise<TLSSocket> {
  const s = tlsConnect({ host: '127.0.0.1', port, ALPNProtocols: ['http/1.1'], ...opts });
  await once(s, 'secureConnect');
  return s;
}

/** Sends one raw HTTP/1.1 request on an open socket and reads the response (rejects if the connection closes first). */
export function rawRequest(s: TLSSocket, head: string, body = ''): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const done = (): void => {
      s.off('data', onData);
      s.off('close', onClose);
      s.off('error', onClose);
    };
    const onClose = (err?: unknown): void => {
      done();
      reject(err instanceof Error ? err : new Error('the connection closed before a response'));
    };
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const headers = buf.slice(0, end);
      const len = Number(/\r\ncontent-length: *(\d+)/i.exec(headers)?.[1] ?? 0);
      if (buf.length - end - 4 < len) return;
      done();
      resolve({ status: Number(headers.slice(9, 12)), headers, body: buf.slice(end + 4, end + 4 + len) });
    };
    s.on('data', onData);
    s.once('close', onClose);
    s.once('error', onClose);
    s.write(head + body);
  });
}
