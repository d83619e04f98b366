import { chmodSync, closeSync, constants, fchmodSync, openSync, statSync, writeSync } from 'node:fs';

// Files in the relay's data dir hold secrets (the database with sessions and sealed keys, the
// secret-box key, the dev CA's key). They are created 0600 whatever the directory's mode and
// the process umask: a packaged /var/lib/tunn is often 0755, and a file created with the
// default mode (0644 under umask 022) would be readable by every local user.

const PRIVATE = 0o600;

/** True for errors that mean "this file is not ours to change" (owned by another user). */
const notOurs = (err: unknown): boolean => ['EPERM', 'EACCES'].includes((err as NodeJS.ErrnoException).code ?? '');

/**
 * Writes `data` to `path` with mode 0600: the mode is set on the open descriptor before any
 * byte is written, so a file that existed with a looser mode never holds the secret readable.
 * `exclusive` fails with EEXIST when the file exists (first-start key files).
 */
export function writePrivateFile(path: string, data: string | Buffer, opts: { exclusive?: boolean } = {}): void {
  const fd = openSync(path, opts.exclusive ? 'wx' : 'w', PRIVATE);
  try {
    fchmodSync(fd, PRIVATE);
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates `path` empty with mode 0600 if it does not exist, and tightens it to 0600 if it does.
 * Used before SQLite opens its database: SQLite creates the `-wal` and `-shm` files with the
 * mode of the database file, so the three are private together.
 */
export function ensurePrivateFile(path: string): void {
  const fd = openSync(path, constants.O_RDONLY | constants.O_CREAT, PRIVATE);
  try {
    if ((statSync(path).mode & 0o777) !== PRIVATE) fchmodSync(fd, PRIVATE);
  } catch (err) {
    if (!notOurs(err)) throw err;
  } finally {
    closeSync(fd);
  }
}

/** Tightens an existing file to 0600; a missing file, or one owned by another user, is left as is. */
export function tightenIfExists(path: string): void {
  try {
    if ((statSync(path).mode & 0o777) !== PRIVATE) chmodSync(path, PRIVATE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !notOurs(err)) throw err;
  }
}

/**
 * A warning for a data dir that other users may enter or list (any group/other bit), or
 * undefined when it is private. The files in it are 0600 either way; the directory's mode
 * still shows other users which files exist and lets them read any file a tool of the
 * operator's (a backup, an editor) writes there with a default mode.
 */
export function dataDirWarning(dir: string): string | undefined {
  const mode = statSync(dir).mode & 0o777;
  if ((mode & 0o077) === 0) return undefined;
  return `the data dir ${dir} is open to other users (mode ${mode.toString(8).padStart(4, '0')}); it holds the database and keys: run \`chmod 700 ${dir}\``;
}
