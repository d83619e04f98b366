import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { countUntilEnd, sendBulk } from '../../test/support/bulk.ts';
import { agentServerOptions, relaySessionOptions, SESSION_WINDOW } from '../protocol/h2-options.ts';
import { alwaysReading } from './always-reading.ts';

// Guards: bulk data both ways at once over one HTTP/2 session with the data path's windows
// never stalls (issue: ~1 MiB down / ~8 MiB up through a tunnel, then nothing). Without the
// wrapper this exact exchange stalls on every run on loopback: both sessions stop reading their
// socket while their own write is in progress, and both writes wait for the other to read.

const STREAMS = 4;
const SIZE = 16 * 1024 * 1024;

describe('alwaysReading: an HTTP/2 session whose socket is always read', () => {
  let raw: net.Server;
  let h2: http2.Http2Server;
  before(async () => {
    h2 = http2.createServer(agentServerOptions);
    h2.on('session', (s) => s.once('remoteSettings', () => s.setLocalWindowSize(SESSION_WINDOW)));
    h2.on('stream', (s) => {
      s.respond({ ':status': 200 });
      s.resume();
      sendBulk(s, SIZE, 2);
    });
    // As the agent does: the session gets the wrapper, not the socket.
    raw = net.createServer((socket) => h2.emit('connection', alwaysReading(socket)));
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  });
  after(() => {
    raw.close();
    h2.close();
  });

  it(`carries ${STREAMS} streams of ${SIZE / 1048576} MiB each way at once, both ends writing`, async () => {
    const { port } = raw.address() as AddressInfo;
    const client = http2.connect(`http://127.0.0.1:${port}`, relaySessionOptions);
    client.once('remoteSettings', () => client.setLocalWindowSize(SESSION_WINDOW));
    try {
      const counts = await Promise.all(
        Array.from({ length: STREAMS }, () => {
          const s = client.request({ ':method': 'POST', ':path': '/' });
          sendBulk(s, SIZE, 1);
          return countUntilEnd(s, SIZE);
        }),
      );
      assert.deepEqual(counts, Array(STREAMS).fill(SIZE));
    } finally {
      client.close();
    }
  });
});
