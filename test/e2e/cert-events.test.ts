import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { certEventHeaders } from '../../src/certs/cert-event-signature.ts';
import { createToken, request, startCli, startRelay, tmpDir, type RelayHandle } from './harness.ts';

// Security property (issue 9, seed 001 "cert-source provenance validation"): the relay takes a
// certificate state from an external manager only when it is signed with the cert event token,
// recently, once; `tunn cert event` is the sender, with the token read from a file.

const DOMAIN = 'shop.example.test';
const TOKEN = 'cert-event-token-0123456789abcdef';

describe('cert events from an external certificate manager', () => {
  const tmp = tmpDir('tunn-cert-events-');
  const tokenFile = join(tmp.path, 'cert-event-token');
  const env = { TUNN_CONFIG_DIR: join(tmp.path, 'cfg') };
  let relay: RelayHandle;
  const agentToken = join(tmp.path, 'agent-token');
  let api: string[];
  before(async () => {
    writeFileSync(tokenFile, TOKEN + '\n', { mode: 0o600 });
    relay = await startRelay({ extra: ['--cert-event-token-file', tokenFile] });
    writeFileSync(agentToken, (await createToken(relay, 'owner@example.test')) + '\n', { mode: 0o600 });
    api = ['--relay', relay.url, '--relay-ca', relay.caPath];
    const add = startCli(['domain', 'add', DOMAIN, '--no-wait', '--token-file', agentToken, ...api], { env });
    assert.equal(await add.exited, 0, add.stderr.join('\n'));
  });
  after(async () => {
    await relay?.stop();
    tmp.remove();
  });

  const post = (raw: string, headers: Record<string, string>) =>
    request(`${relay.url}/v1/domains/cert-events`, { method: 'POST', ca: relay.ca, headers: { 'content-type': 'application/json', ...headers }, body: raw });

  it('`tunn cert event` signs with --cert-event-token-file and the relay records the state', async () => {
    const p = startCli(['cert', 'event', DOMAIN, '--status', 'issued', '--not-after', '2027-03-01T00:00:00Z', '--cert-event-token-file', tokenFile, '--json', ...api], { env });
    const line = await p.waitFor((l) => l.event === 'cert_event');
    assert.deepEqual([line.domain, line.status], [DOMAIN, 'issued']);
    assert.equal(await p.exited, 0);
    assert.ok(!p.stderr.some((l) => l.includes('warning')), p.stderr.join('\n'));
    const show = startCli(['domain', 'show', DOMAIN, '--json', '--token-file', agentToken, ...api], { env });
    const shown = await show.waitFor((l) => l.domain !== undefined);
    const d = shown.domain as { tls: { status: string; notAfter: string } };
    assert.deepEqual([d.tls.status, d.tls.notAfter], ['issued', '2027-03-01T00:00:00.000Z']);
  });

  it('a wrong token is refused with what to do', async () => {
    const wrong = join(tmp.path, 'wrong');
    writeFileSync(wrong, 'not-the-token-0123456789\n', { mode: 0o600 });
    const p = startCli(['cert', 'event', DOMAIN, '--status', 'tls_error', '--cert-event-token-file', wrong, ...api], { env });
    assert.equal(await p.exited, 1);
    assert.match(p.stderr.join('\n'), /tunn: error: x-cert-event-signature does not match: sign "<timestamp>\.<the exact body bytes>"/);
  });

  it('a captured request is refused when replayed, and when stale', async () => {
    const raw = JSON.stringify({ domain: DOMAIN, status: 'expiring' });
    // Signed a second after the CLI's event above may have been: a domain takes one event per second.
    const headers = certEventHeaders(TOKEN, raw, Date.now() + 1_000);
    assert.equal((await post(raw, headers)).status, 202);
    const replay = await post(raw, headers);
    assert.equal(replay.status, 409);
    assert.match(replay.text, /already received/);
    const stale = await post(raw, certEventHeaders(TOKEN, raw, Date.now() - 10 * 60_000));
    assert.equal(stale.status, 401);
    assert.match(stale.text, /x-cert-event-timestamp is \d+ s old \(allowed: 300 s\)/);
  });

  it('the token itself in x-cert-event-token is refused', async () => {
    const r = await post(JSON.stringify({ domain: DOMAIN, status: 'issued' }), { 'x-cert-event-token': TOKEN });
    assert.equal(r.status, 401);
    assert.match(r.text, /x-cert-event-token is not accepted/);
  });
});
