import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RelayMetrics } from './metrics.ts';

describe('RelayMetrics', () => {
  it('reports the plain per-tunnel counters as Prometheus series when scraped', async () => {
    const m = new RelayMetrics();
    const t = m.forTunnel('web.tunn.localhost');
    t.open += 2;
    t.bytesIn += 100;
    t.bytesOut += 2048;
    t.requests(200);
    t.requests(204);
    t.requests(404);
    t.requests(999); // not a status class: not counted
    const text = await m.registry.metrics();
    assert.match(text, /tunn_open_connections\{tunnel="web\.tunn\.localhost"\} 2/);
    assert.match(text, /tunn_requests_total\{tunnel="web\.tunn\.localhost",code="2xx"\} 2/);
    assert.match(text, /tunn_requests_total\{tunnel="web\.tunn\.localhost",code="4xx"\} 1/);
    assert.doesNotMatch(text, /code="5xx"/);
    assert.match(text, /tunn_bytes_total\{tunnel="web\.tunn\.localhost",direction="in"\} 100/);
    assert.match(text, /tunn_bytes_total\{tunnel="web\.tunn\.localhost",direction="out"\} 2048/);
  });

  it('keeps a host’s totals across a reconnect and ends its open-connections series when it goes', async () => {
    const m = new RelayMetrics();
    m.forTunnel('a.tunn.localhost').requests(200);
    m.forget('a.tunn.localhost');
    let text = await m.registry.metrics();
    assert.doesNotMatch(text, /tunn_open_connections\{tunnel="a/);
    assert.match(text, /tunn_requests_total\{tunnel="a\.tunn\.localhost",code="2xx"\} 1/);
    m.forTunnel('a.tunn.localhost').requests(201);
    text = await m.registry.metrics();
    assert.match(text, /tunn_requests_total\{tunnel="a\.tunn\.localhost",code="2xx"\} 2/);
    assert.match(text, /tunn_open_connections\{tunnel="a\.tunn\.localhost"\} 0/);
  });

  it('counts refused requests per tunnel and reason (issue 17: 401/403/429 were missing)', async () => {
    const m = new RelayMetrics();
    const t = m.forTunnel('app.tunn.localhost');
    t.refuse('policy');
    t.refuse('policy');
    t.refuse('rate-limit');
    m.forTunnel('other.tunn.localhost').refuse('basic-auth');
    const text = await m.registry.metrics();
    assert.match(text, /tunn_refused_total\{tunnel="app\.tunn\.localhost",reason="policy"\} 2/);
    assert.match(text, /tunn_refused_total\{tunnel="app\.tunn\.localhost",reason="rate-limit"\} 1/);
    assert.match(text, /tunn_refused_total\{tunnel="other\.tunn\.localhost",reason="basic-auth"\} 1/);
  });

  it('reports connections, UDP flows, datagrams and drops of tcp/udp/tls tunnels (issue 11)', async () => {
    const m = new RelayMetrics();
    const t = m.forTunnel('wg.tunn.localhost');
    t.connections += 3;
    t.flows += 2;
    t.flowsOpen = 1;
    t.datagramsIn += 40;
    t.datagramsOut += 39;
    t.drop('oversize');
    t.drop('flow-limit', 4);
    const text = await m.registry.metrics();
    assert.match(text, /tunn_connections_total\{tunnel="wg\.tunn\.localhost"\} 3/);
    assert.match(text, /tunn_udp_flows_total\{tunnel="wg\.tunn\.localhost"\} 2/);
    assert.match(text, /tunn_udp_flows\{tunnel="wg\.tunn\.localhost"\} 1/);
    assert.match(text, /tunn_datagrams_total\{tunnel="wg\.tunn\.localhost",direction="in"\} 40/);
    assert.match(text, /tunn_datagrams_total\{tunnel="wg\.tunn\.localhost",direction="out"\} 39/);
    assert.match(text, /tunn_drops_total\{tunnel="wg\.tunn\.localhost",reason="oversize"\} 1/);
    assert.match(text, /tunn_drops_total\{tunnel="wg\.tunn\.localhost",reason="flow-limit"\} 4/);
  });
});
