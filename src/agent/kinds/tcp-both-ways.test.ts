import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { countUntilEnd, sendBulk } from '../../../test/support/bulk.ts';
import { startH2Pair, type H2Pair } from '../../../test/support/h2-pair.ts';
import { h2Carrier } from './carrier.ts';
import { carryTcp } from './tcp.ts';

// Guards: tcp tunnels carry bulk data both ways at once without stalling (ssh, database dumps
// and restores, rsync do that). The streams ride the agent link's HTTP/2 session, which stalled
// for good when both of its ends were writing more than the kernel buffers hold
// (src/protocol/h2-options.ts AGENT_SESSION_WINDOW); here several connections through the real tcp kind, over a pair
// set up as the agent link is, each send and receive 16 MiB at the same time (with 8, the old
// session stalled on every run on loopback; with 4 it did not).

const CONNECTIONS = 8;
const SIZE = 16 * 1024 * 1024;

describe('agent stream kind tcp: bulk both ways at once', () => {
  let target: net.Server;
  let pair: H2Pair;
  const atTarget: Promise<number>[] = [];
  before(async () => {
    // Every connection's target reads everything while it sends SIZE bytes back.
    target = net.createServer({ allowHalfOpen: true }, (s) => {
      atTarget.push(countUntilEnd(s, SIZE));
      sendBulk(s, SIZE, 2);
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    const port = (target.address() as AddressInfo).port;
    pair = await startH2Pair((stream) => void carryTcp(h2Carrier(stream), { target: { host: '127.0.0.1', port } }));
  });
  after(async () => {
    await pair?.close();
    target?.close();
  });

  it(`${CONNECTIONS} connections each send and receive ${SIZE / 1048576} MiB at once`, async () => {
    const down = await Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        const { req, answer } = await pair.open();
        assert.equal(answer.open, true);
        const got = countUntilEnd(req, SIZE);
        sendBulk(req, SIZE, 1);
        return got;
      }),
    );
    assert.deepEqual(down, Array(CONNECTIONS).fill(SIZE));
    assert.deepEqual(await Promise.all(atTarget), Array(CONNECTIONS).fill(SIZE));
  });
});
