// The first WebSocket messages of an upgraded connection, decoded from the captured bytes of
// each direction (RFC 6455 §5.2). Fragments are shown as they came; compressed frames
// (permessage-deflate) are marked, not inflated.

export interface WebSocketMessage {
  direction: 'to-target' | 'to-client';
  opcode: 'text' | 'binary' | 'continuation' | 'close' | 'ping' | 'pong' | 'other';
  compressed: boolean;
  length: number;
  /** Text payloads as text; other payloads as hex (both cut at 4 KiB). */
  data: string;
}

const OPCODES: Record<number, WebSocketMessage['opcode']> = { 0: 'continuation', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' };
const SHOWN = 4096;

export function websocketMessages(bytes: Buffer, direction: WebSocketMessage['direction'], max = 50): WebSocketMessage[] {
  const out: WebSocketMessage[] = [];
  let i = 0;
  while (i + 2 <= bytes.length && out.length < max) {
    const b0 = bytes[i]!;
    const b1 = bytes[i + 1]!;
    let len = b1 & 0x7f;
    let p = i + 2;
    if (len === 126) {
      if (p + 2 > bytes.length) break;
      len = bytes.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      if (p + 8 > bytes.length) break;
      len = Number(bytes.readBigUInt64BE(p));
      p += 8;
    }
    let mask: Buffer | undefined;
    if (b1 & 0x80) {
      if (p + 4 > bytes.length) break;
      mask = bytes.subarray(p, p + 4);
      p += 4;
    }
    const payload = Buffer.from(bytes.subarray(p, Math.min(p + len, bytes.length, p + SHOWN)));
    if (mask) for (let k = 0; k < payload.length; k++) payload[k]! ^= mask[k % 4]!;
    const opcode = OPCODES[b0 & 0x0f] ?? 'other';
    const compressed = (b0 & 0x40) !== 0;
    out.push({ direction, opcode, compressed, length: len, data: opcode === 'text' && !compressed ? payload.toString('utf8') : payload.toString('hex') });
    if (p + len > bytes.length) break;
    i = p + len;
  }
  return out;
}
