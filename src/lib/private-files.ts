import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants, fchmodSync, fsyncSync, linkSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

// Files in the relay's data dir hold secrets (the database with sessions and sealed keys, the
// secret-box key, the dev CA's key). They are created 0600 whatever the directory's mode and
// the process umask: a packaged /var/lib/tunn is often 0755, and a file created with the
// default mode (0644 under umask 022) would be readable by every local user.

const PRIVATE = 0o600;

/** True for errors that mean "this file is not ours to change" (owned by another user). */
const notOurs = (err: unknown): boolean => ['EPERM', 'EACCES'].includes((err as NodeJS.ErrnoException).code ?? '');

/**
 * Writes `data` to `path` with mode 0600. The bytes go into a new file created next to it
 * (O_CREAT|O_EXCL|O_NOFOLLOW, 0600 set on the descriptor before any byte is written) that is
 * then renamed over `path`. Rewriting the existing file in place would truncate it first,
 * follow a symlink planted at `path` (writing the secret wherever it points, or truncating a
 * file of the operator's), and keep any hard link to the old inode; a crash half-way would
 * leave a truncated credentials file. `exclusive` fails with EEXIST when `path` exists, a
 * symlink included (first-start key files, where two processes may race): the file is written
 * whole and then linked into place, so the loser of the race never reads a half-written one.
 */
export function writePrivateFile(path: string, data: string | Buffer, opts: { exclusive?: boolean } = {}): void {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  if (opts.exclusive) {
    try {
      writeNew(tmp, bytes);
      linkSync(tmp, path); // never replaces: EEXIST when path exists, a (dangling) symlink included
    } finally {
      rmSync(tmp, { force: true });
    }
    return;
  }
  try {
    writeNew(tmp, bytes);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Creates `path` (never an existing file or a symlink) 0600 and writes `bytes` to disk. */
function writeNew(path: string, bytes: Buffer): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, PRIVATE);
  try {
    fchmodSync(fd, PRIVATE); // the umask may have taken bits off; never adds any
    writeSync(fd, bytes);
    fsyncSync(fd);
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
