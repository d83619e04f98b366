import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requiredRecords } from '../dns/verify.ts';
import { formatDomain, formatRecords, parentZone } from './domain-commands.ts';

describe('tunn domain output', () => {
  it('prints the records exactly as seed 002 shows them', () => {
    const records = requiredRecords({ domain: 'tunn.mycompany.com', acmeId: 'a7x9k2', relayDomain: 'tunn.to' });
    assert.equal(
      formatRecords('tunn.mycompany.com', records).join('\n'),
      [
        'tunn: To verify ownership, add these DNS records to mycompany.com:',
        '',
        '      *.tunn.mycompany.com                    CNAME  tunn.to',
        '      _acme-challenge.tunn.mycompany.com      CNAME  a7x9k2._acme.tunn.to',
        '',
        '      (a7x9k2 is your unique account identifier)',
      ].join('\n'),
    );
    const strict = requiredRecords({ domain: 'tunn.mycompany.com', acmeId: 'a7x9k2', relayDomain: 'tunn.to', strict: true, verificationToken: 'tok123' });
    assert.match(formatRecords('tunn.mycompany.com', strict)[4]!, /^ {6}_tunn-verify\.tunn\.mycompany\.com +TXT {4}"tok123"$/);
    assert.equal(parentZone('tunn.mycompany.com'), 'mycompany.com');
    assert.equal(parentZone('mycompany.com'), 'mycompany.com');
  });

  it('shows a domain like the seed: owner, shares, status, certificate', () => {
    const lines = formatDomain({
      domain: 'tunn.mycompany.com',
      owner: 'bryan@tunn.to',
      role: 'owner',
      shares: ['@mycompany.com'],
      status: 'verified',
      verifiedAt: '2026-01-01T00:00:00.000Z',
      createdAt: '2026-01-01T00:00:00.000Z',
      tls: { mode: 'terminate', allowRelayFallback: false, status: 'issued', notAfter: '2026-04-01T00:00:00.000Z', lastError: null, lastCheckedAt: null, certificateRef: 'x', failurePolicy: 'backoff', failureCount: 0, nextRetryAt: null },
    });
    assert.deepEqual(lines.slice(0, 4), ['Domain: tunn.mycompany.com', 'Owner:  bryan@tunn.to', 'Shared: @mycompany.com (domain wildcard)', 'Status: verified']);
    assert.equal(lines[4], 'Cert:   issued, expires 2026-04-01T00:00:00.000Z');
  });
});
