// The contract between the HTTP/1.1 framer (http1.ts) and its consumer: the events it
// calls with slices of the chunks it is fed, and the options it is built with.

import type { MessageHead } from './http1-head.ts';

export interface FramerEvents {
  /** A head was parsed; it ends at offset `end` of `chunk` (it may have begun in an earlier chunk). */
  onHead(head: MessageHead, chunk: Buffer, end: number): void;
  /** Body bytes chunk[start, end) of the current message (in wire framing, chunked included). */
  onBody(chunk: Buffer, start: number, end: number): void;
  /** The current message ended at chunk offset `end`. */
  onMessageEnd(chunk: Buffer, end: number): void;
  /** After a 101 or accepted upgrade everything from chunk offset `start` is opaque. */
  onRaw?(chunk: Buffer, start: number): void;
  /**
   * When set, the trailer section of a chunked body (the field lines after the last chunk and
   * the empty line that ends it) is parsed and handed over here instead of through onBody, so a
   * proxy can rewrite it; the consumer then writes the section it wants (at least CRLF).
   */
  onTrailers?(fields: [name: string, value: string][]): void;
  /**
   * When set, each chunk-size line of a chunked body is handed over here as its size (once the
   * line's CRLF is in) instead of through onBody, so a proxy can write it in canonical form
   * (hex size, CRLF, no extensions) rather than as received.
   */
  onChunkSize?(size: number): void;
}

export interface FramerOptions {
  kind: 'request' | 'response';
  /** Largest head accepted (bytes); larger → HttpParseError 431 (requests) or 400 (responses). */
  maxHeadSize?: number;
  /** Responses: the method of the request each response answers, in order (HEAD → no body). */
  nextRequestMethod?: () => string | undefined;
  /**
   * Responses: false leaves `headers` and `names` of each head empty and checks only the fields
   * that frame the message (Content-Length, Transfer-Encoding). For a proxy that passes
   * responses through as received and needs only the status and where each message ends.
   */
  keepFields?: boolean;
}
