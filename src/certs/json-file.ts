import { readFile } from 'node:fs/promises';
import { errorMessage } from '../lib/errors.ts';

// The file storages (certificates, ACME accounts, for a process without the relay's database)
// keep one JSON document per file, written whole with lib/private-files.ts writePrivateFile.

/** The JSON document at `path`, or undefined when there is none; an unreadable one says what it holds and how to start over. */
export async function readJsonFile<T>(path: string, holds: string, startOver: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`reading ${holds} ${path}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`reading ${holds} ${path}: it is not valid JSON (${errorMessage(err)}); remove it to ${startOver}`, { cause: err });
  }
}
