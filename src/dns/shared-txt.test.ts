import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { systemClock } from '../lib/clock.ts';
import { createLogger } from '../lib/logger.ts';
import { openStore } from '../store/store.ts';
import { dnsQuery, txtString } from './client.ts';
import { startRelayDns } from './relay-dns.ts';
import { SharedTxt } from './shared-txt.ts';

// Issue 14: every relay's DNS server answers the ACME TXT records any relay presents (the
// relay's wildcard, an agents' DNS-01), from the shared database. Two relays' real DNS servers
// on one real database (SQLite here: the same Kysely queries run on PostgreSQL).

describe('SharedTxt', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-shared-txt-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("a TXT value presented on relay A is answered by relay B's DNS server, and goes when cleaned up", async () => {
    const store = await openStore(join(dir, 'tunn.db'));
    const logger = createLogger({ json: true, level: 'silent' });
    const [dnsA, dnsB] = await Promise.all([0, 1].map(() => startRelayDns({ domain: 'tunn.test', publicIps: ['127.0.0.1'], port: 0, host: '127.0.0.1' })));
    const a = new SharedTxt({ zone: dnsA!.zone, store, clock: systemClock, logger, syncMs: 100 });
    const b = new SharedTxt({ zone: dnsB!.zone, store, clock: systemClock, logger, syncMs: 100 });
    const txtAt = async (port: number, name: string): Promise<string[]> => ((await dnsQuery({ host: '127.0.0.1', port }, name, 'TXT')).answers ?? []).filter((x) => x.type === 'TXT').map(txtString).sort();
    try {
      await a.start();
      await b.start();
      const name = 'acct1._acme.tunn.test';
      await a.present(name, 'wildcard-value');
      await a.present('ACCT1._acme.tunn.test', 'apex-value'); // two values on one name, compared normalised
      await a.waitVisible();
      assert.deepEqual(await txtAt(dnsB!.port, name), ['apex-value', 'wildcard-value'], "B's DNS server answers A's values");
      assert.deepEqual(await txtAt(dnsA!.port, name), ['apex-value', 'wildcard-value']);

      await a.cleanup(name, 'wildcard-value');
      await a.waitVisible();
      assert.deepEqual(await txtAt(dnsB!.port, name), ['apex-value'], 'only the cleaned-up value goes, on every relay');
      assert.deepEqual(await txtAt(dnsA!.port, name), ['apex-value']);
    } finally {
      a.stop();
      b.stop();
      await Promise.all([dnsA!.close(), dnsB!.close()]);
      await store.close();
    }
  });
});
