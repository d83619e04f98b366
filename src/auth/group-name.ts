import { TunnError } from '../lib/errors.ts';

// What a group name may be, and the message for one that is not. Pure (no Node APIs): the web
// console checks a name as it is typed with this very function, so it says what the API says.

const NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export function isValidGroupName(name: string): boolean {
  return NAME.test(name);
}

/** The normalised group name; throws INVALID_INPUT saying what a name may hold. */
export function requireGroupName(raw: string): string {
  const name = raw.trim().toLowerCase();
  if (!isValidGroupName(name)) {
    throw new TunnError('INVALID_INPUT', `"${raw}" is not a valid group name: use lower-case letters, digits, - and _ (up to 64, starting with a letter or digit)`);
  }
  return name;
}

/** The refusal of a group name the account already uses. */
export function groupExists(name: string): TunnError {
  return new TunnError('CONFLICT', `the group "${name}" already exists; add members with \`tunn group add ${name} <email>\``);
}
