import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { TunnError } from './errors.ts';
import { tightenIfExists, writePrivateFile } from './private-files.ts';

// Secrets at rest (certificate private keys, token signing keys, OIDC secrets) are sealed
// with AES-256-GCM. The key comes from the environment or a key file created on first start.
// Sealed format: "v1:" + base64url(iv[12] | tag[16] | ciphertext); the optional `context`
// is bound as additional authenticated data so a sealed value cannot be moved to another row.

const VERSION = 'v1:';

export class SecretBox {
  readonly #key: Buffer;
  constructor(key: Buffer) {
    if (key.length !== 32) throw new TypeError('SecretBox key must be 32 bytes');
    this.#key = key;
  }

  seal(plain: string | Buffer, context = ''): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.#key, iv);
    c.setAAD(Buffer.from(context));
    const ct = Buffer.concat([c.update(plain), c.final()]);
    return VERSION + Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64url');
  }

  open(sealed: string, context = ''): Buffer {
    if (!sealed.startsWith(VERSION)) {
      throw new TunnError('INVALID_INPUT', 'sealed secret has an unknown format');
    }
    const raw = Buffer.from(sealed.slice(VERSION.length), 'base64url');
    if (raw.length < 28) throw new TunnError('INVALID_INPUT', 'sealed secret is truncated');
    const d = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, 12));
    d.setAAD(Buffer.from(context));
    d.setAuthTag(raw.subarray(12, 28));
    try {
      return Buffer.concat([d.update(raw.subarray(28)), d.final()]);
    } catch (err) {
      throw new TunnError(
        'INVALID_INPUT',
        'cannot decrypt a stored secret: the encryption key (TUNN_SECRET_KEY or the key file in the data dir) is not the one it was sealed with',
        { cause: err },
      );
    }
  }

  openString(sealed: string, context = ''): string {
    return this.open(sealed, context).toString('utf8');
  }
}

/**
 * The key from `envValue` (64 hex chars or 44 base64 chars) or else from `keyFile`, which is
 * created with mode 0600 on first start.
 */
export function loadSecretKey(envValue: string | undefined, keyFile: string): Buffer {
  if (envValue) {
    const key = /^[0-9a-f]{64}$/i.test(envValue) ? Buffer.from(envValue, 'hex') : Buffer.from(envValue, 'base64');
    if (key.length !== 32) {
      throw new TunnError('CONFIG_INVALID', 'the secret-box key (TUNN_SECRET_KEY or --secret-key-file) must be 32 bytes as 64 hex characters or base64; generate one with: openssl rand -hex 32');
    }
    return key;
  }
  if (existsSync(keyFile)) {
    tightenIfExists(keyFile);
    const key = Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'hex');
    if (key.length !== 32) throw new TunnError('CONFIG_INVALID', `the key file ${keyFile} is damaged: it must hold 64 hex characters`);
    return key;
  }
  const key = randomBytes(32);
  writePrivateFile(keyFile, key.toString('hex') + '\n', { exclusive: true });
  return key;
}
