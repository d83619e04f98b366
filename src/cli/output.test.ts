import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatSeconds } from '../auth/grants.ts';
import { describeAccess } from './output.ts';

describe('describeAccess (the Allowed: line)', () => {
  it('states every control in force, not only who', () => {
    assert.equal(describeAccess({ public: false, allow: [] }, formatSeconds), 'only you');
    assert.equal(describeAccess({ public: true, allow: [] }, formatSeconds), 'everyone (--public)');
    assert.equal(describeAccess({ public: false, allow: ['bob@x.com', 'group:eng'], grantFor: { seconds: 7200 } }, formatSeconds), `bob@x.com, group:eng and you (for ${formatSeconds(7200)})`);
    assert.equal(
      describeAccess({ public: true, allow: [], allowIps: ['10.0.0.0/8', '2001:db8::/32'], basicAuth: { user: 'admin' }, rateLimit: { perIp: 100, perTunnel: 1000 } }, formatSeconds),
      'everyone (--public); from 10.0.0.0/8, 2001:db8::/32 only (--allow-ip); with basic auth as admin (--basic-auth); 100 requests/min per client IP (--rate-limit); 1000 requests/min in all (--rate-limit-tunnel)',
    );
  });

  it('never shows the basic auth password', () => {
    const t = { public: true, allow: [], basicAuth: { user: 'admin', pass: 's3cret-pw' } };
    assert.doesNotMatch(describeAccess(t, formatSeconds), /s3cret/);
  });
});
