import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { permanentConnectError } from './connect-errors.ts';

const err = (code: string) => Object.assign(new Error(code), { code });

describe('permanentConnectError', () => {
  it('stops on what retrying cannot fix, saying what to do', () => {
    const nf = permanentConnectError(err('ENOTFOUND'), 'tunn.example.invalid');
    assert.equal(nf?.code, 'RELAY_NOT_FOUND');
    assert.match(nf!.message, /relay host tunn\.example\.invalid not found.*check the host in --relay/);
    for (const code of ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY']) {
      const e = permanentConnectError(err(code), 'r.example');
      assert.equal(e?.code, 'RELAY_CERT_UNTRUSTED', code);
      assert.match(e!.message, /does not trust the relay's certificate.*--relay-ca FILE/);
    }
    assert.match(permanentConnectError(err('CERT_HAS_EXPIRED'), 'r.example')!.message, /not valid now.*clock/);
    assert.equal(permanentConnectError(err('ERR_TLS_CERT_ALTNAME_INVALID'), 'r.example')?.code, 'RELAY_CERT_UNTRUSTED');
    assert.equal(permanentConnectError(err('ERR_SSL_WRONG_VERSION_NUMBER'), 'r.example')?.code, 'RELAY_NOT_A_RELAY');
  });

  it('keeps the back-off for transient errors', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EPIPE', 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE']) {
      assert.equal(permanentConnectError(err(code), 'r.example'), undefined, code);
    }
    assert.equal(permanentConnectError(new Error('timed out connecting'), 'r.example'), undefined);
  });
});
