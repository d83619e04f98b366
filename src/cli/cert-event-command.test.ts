import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isTunnError } from '../lib/errors.ts';
import { certEventToken, runCertEvent } from './cert-event-command.ts';

// `tunn cert event`: where the signing token comes from, and the errors before anything is sent.

describe('tunn cert event', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunn-cert-event-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('takes the token from --cert-event-token-file, then TUNN_CERT_EVENT_TOKEN(_FILE)', () => {
    const f = join(dir, 'token');
    writeFileSync(f, 'from-file-0123456789\n', { mode: 0o600 });
    assert.equal(certEventToken({ certEventTokenFile: f }, { TUNN_CERT_EVENT_TOKEN: 'from-env' }), 'from-file-0123456789');
    assert.equal(certEventToken({}, { TUNN_CERT_EVENT_TOKEN: 'from-env' }), 'from-env');
    assert.equal(certEventToken({}, { TUNN_CERT_EVENT_TOKEN_FILE: f }), 'from-file-0123456789');
  });

  it('says what to do without a token, or with a bad status', async () => {
    assert.throws(
      () => certEventToken({}, {}),
      (e) => isTunnError(e, 'CONFIG_INVALID') && e.message === "no cert event token: pass --cert-event-token-file FILE or set TUNN_CERT_EVENT_TOKEN (the same value as the relay's --cert-event-token-file)",
    );
    await assert.rejects(runCertEvent('shop.example.com', { status: 'fine' }, {}), (e) => isTunnError(e, 'INVALID_INPUT') && /^--status must be one of pending_issue, .*passthrough_unverified$/.test(e.message));
  });
});
