// Visitors choose paths, hosts and methods, and the relay's parser lets bytes above 0x7f through.
// Anything of theirs that reaches a terminal (the relay's log, the agent's request log, `--json`
// lines an operator `cat`s) goes through here so it cannot move the cursor, recolour or retitle
// the terminal. C1 controls (U+0080–U+009F) count: 0x9b is a CSI on some terminals.

const CONTROLS = /[\x00-\x1f\x7f-\x9f]/g;
const JSON_UNESCAPED = /[\x7f-\x9f]/g;

/** `text` with every C0 and C1 control character (and DEL) shown as `\xNN`. */
export function inert(text: string): string {
  return text.replace(CONTROLS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * A JSON text with DEL and the C1 controls escaped as `\u00NN` (JSON.stringify escapes only
 * C0). Valid JSON stays valid and means the same: those characters only occur inside strings.
 */
export function inertJson(json: string): string {
  return json.replace(JSON_UNESCAPED, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
}
