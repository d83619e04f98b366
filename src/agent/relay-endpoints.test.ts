import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRelayList, pickEndpoint, resolveEndpoints } from './relay-endpoints.ts';

describe('relay endpoints (an agent on a cluster)', () => {
  it('--relay takes one URL or a comma list', () => {
    assert.deepEqual(parseRelayList('https://a.example:7443, https://b.example').map(String), ['https://a.example:7443/', 'https://b.example/']);
  });

  it('every address of a name is an endpoint, each dialled with the name as the TLS server name', async () => {
    const eps = await resolveEndpoints(parseRelayList('https://tunn.example.com,https://10.0.0.3:8443'), async () => ['10.0.0.1', '10.0.0.2']);
    assert.deepEqual(eps.map((e) => [e.host, e.address, e.port]), [
      ['tunn.example.com', '10.0.0.1', 443],
      ['tunn.example.com', '10.0.0.2', 443],
      ['10.0.0.3', '10.0.0.3', 8443],
    ]);
  });

  it('a name that does not resolve is kept as is (the dial says why)', async () => {
    const eps = await resolveEndpoints(parseRelayList('https://nowhere.example'), async () => {
      throw new Error('ENOTFOUND');
    });
    assert.deepEqual(eps.map((e) => [e.host, e.address]), [['nowhere.example', undefined]]);
  });

  // What keeps a tunnel up when a relay goes: two sessions are on two different relays, and a
  // session that fails moves to a relay the other session does not use.
  it('two sessions take two different relays; a failed one moves to a free relay', async () => {
    const eps = await resolveEndpoints(parseRelayList('https://10.0.0.1:1,https://10.0.0.2:1,https://10.0.0.3:1'));
    const s0 = pickEndpoint(eps, 0, 0, []);
    const s1 = pickEndpoint(eps, 1, 0, [s0.key]);
    assert.notEqual(s0.key, s1.key);
    // Session 0's relay died: its next attempt skips session 1's relay.
    const again = pickEndpoint(eps, 0, 1, [s1.key]);
    assert.notEqual(again.key, s1.key);
    assert.notEqual(again.key, s0.key);
    // One relay only: both sessions share it.
    const one = await resolveEndpoints(parseRelayList('https://10.0.0.1:1'));
    assert.equal(pickEndpoint(one, 1, 0, [one[0]!.key]).key, one[0]!.key);
  });
});
