import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { caaIssuerFor, caaRecords } from './caa.ts';

describe('CAA records for agent-terminated names', () => {
  it('prints the issue record with this agent’s accounturi, and issuewild ";" for a custom domain', () => {
    const accountUri = 'https://acme-v02.api.letsencrypt.org/acme/acct/123456';
    assert.deepEqual(caaRecords({ name: 'Grafana.Tunn.MyCompany.com.', caDomain: 'letsencrypt.org', accountUri }), ['grafana.tunn.mycompany.com. CAA 0 issue "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/123456"']);
    assert.deepEqual(caaRecords({ name: 'app.example.com', caDomain: 'letsencrypt.org', accountUri, customDomain: 'example.com' })[1], 'example.com. CAA 0 issuewild ";"');
  });

  it('knows the CAA domain of common ACME CAs and refuses values that would break the record', () => {
    assert.equal(caaIssuerFor('https://acme-staging-v02.api.letsencrypt.org/directory'), 'letsencrypt.org');
    assert.equal(caaIssuerFor('https://127.0.0.1:14000/dir'), undefined);
    assert.throws(() => caaRecords({ name: 'a.example', caDomain: 'x"; evil', accountUri: 'https://ca/acct/1' }), /not a CA domain/);
    assert.throws(() => caaRecords({ name: 'a.example', caDomain: 'ca.test', accountUri: 'https://ca/acct/1"; x' }), /not an ACME account URL/);
  });
});
