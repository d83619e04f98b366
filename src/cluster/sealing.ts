import type { Clock } from '../lib/clock.ts';
import { isTunnError, TunnError } from '../lib/errors.ts';
import { nowIso } from '../lib/ids.ts';
import type { SecretBox } from '../lib/secret-box.ts';
import type { Store } from '../store/store.ts';

// Every relay sharing a database must seal and open secrets (signing keys, certificate keys,
// ACME accounts, sign-in secrets) with one key, TUNN_SECRET_KEY. A relay started with another
// key would fail later and piecemeal (a token it cannot sign, a certificate it cannot serve),
// or seal new secrets the other relays cannot open. So at start it opens a canary sealed with
// the database's key, and refuses to start when it cannot. The first relay to find no canary
// writes one, after checking the secrets already there (a database from before the canary).

const CANARY_ID = 'sealing-key';
const CANARY_CONTEXT = 'seal-canary';
const CANARY_TEXT = 'tunn sealing key check v1';
/** src/auth/tokens.ts seals each signing key with this context (pinned by sealing.test.ts through TokenService). */
const signingKeyContext = (kid: string) => `signing-key:${kid}`;

function wrongKey(what: string, cause: unknown): TunnError {
  return new TunnError(
    'CONFIG_INVALID',
    `this relay's sealing key cannot open ${what} in its database: every relay that shares a database must use the same key. ` +
      'Give this relay the TUNN_SECRET_KEY (or --secret-key-file) of the relays already using the database, or the secret.key of the data dir that created it, and start it again',
    { cause },
  );
}

/**
 * Checks that `box` opens what the database holds; writes the canary on first use. Resolves
 * 'verified' or 'created'; rejects CONFIG_INVALID (wrong key, saying what to do) or
 * UNAVAILABLE (the database).
 */
export async function checkSealingKey(store: Store, box: SecretBox, clock: Clock): Promise<'verified' | 'created'> {
  const open = (sealed: string, what: string) => {
    try {
      if (box.openString(sealed, CANARY_CONTEXT) !== CANARY_TEXT) throw new Error('the check value differs');
    } catch (err) {
      throw wrongKey(what, err);
    }
  };
  const canary = await store.db.selectFrom('seal_canary').select('sealed').where('id', '=', CANARY_ID).executeTakeFirst();
  if (canary) {
    open(canary.sealed, 'the secrets sealed');
    return 'verified';
  }
  // No canary yet: a database made before it existed must open with this key before it gets one.
  const key = await store.db.selectFrom('signing_keys').select(['kid', 'private_sealed']).orderBy('created_at').limit(1).executeTakeFirst();
  if (key) {
    try {
      box.open(key.private_sealed, signingKeyContext(key.kid));
    } catch (err) {
      if (isTunnError(err)) throw wrongKey('the token signing keys', err);
      throw err;
    }
  }
  await store.db
    .insertInto('seal_canary')
    .values({ id: CANARY_ID, sealed: box.seal(CANARY_TEXT, CANARY_CONTEXT), created_at: nowIso(clock.now()) })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  // Another relay may have written its canary first (at the same moment, with another key).
  const written = await store.db.selectFrom('seal_canary').select('sealed').where('id', '=', CANARY_ID).executeTakeFirstOrThrow();
  open(written.sealed, 'the secrets sealed');
  return 'created';
}
