import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { createCa, issueLeaf } from '../certs/dev-ca.ts';
import { resetSocket } from './splice.ts';

// resetSocket ends a refused or reset connection on any socket the relay holds. Guards the relay
// process: Node throws ERR_INVALID_HANDLE_TYPE for resetAndDestroy on a TLS socket (TLS ended
// here, `tunn tls --backend tcp`), which, uncaught, ended the relay.

/** A loopback server calling `onSocket` with each accepted socket (TLS ended there when `secure`); resolves with what the client saw. */
async function clientSees(secure: boolean, onSocket: (s: net.Socket) => void): Promise<string> {
  const ca = await createCa('splice test CA', 1);
  const leaf = await issueLeaf(ca, ['localhost'], 1);
  const server = secure ? tls.createServer({ key: leaf.keyPem, cert: leaf.certPem }, onSocket) : net.createServer(onSocket);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  try {
    return await new Promise<string>((resolve) => {
      const c = secure ? tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.certPem }) : net.connect(port, '127.0.0.1');
      c.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code}`));
      c.on('close', () => resolve('closed'));
    });
  } finally {
    server.close();
  }
}

describe('resetSocket', () => {
  it('resets a TCP socket: the peer sees ECONNRESET, not a clean end', async () => {
    assert.equal(await clientSees(false, (s) => resetSocket(s)), 'error ECONNRESET');
  });

  it('closes a TLS socket without throwing (resetAndDestroy throws for it)', async () => {
    let threw: unknown;
    const seen = await clientSees(true, (s) => {
      assert.throws(() => s.resetAndDestroy(), { code: 'ERR_INVALID_HANDLE_TYPE' }, 'what resetSocket avoids');
      try {
        resetSocket(s);
      } catch (err) {
        threw = err;
      }
    });
    assert.equal(threw, undefined);
    assert.notEqual(seen, '');
  });
});
