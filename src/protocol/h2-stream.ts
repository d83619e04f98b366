import http2, { type Http2Stream } from 'node:http2';
import type { SplicedStream } from '../lib/splice.ts';

/**
 * An HTTP/2 stream (either end) as src/lib/splice.ts sees it. A reset is RST_STREAM
 * CONNECT_ERROR (RFC 9113 §8.5: the TCP connection behind it failed), sent only on an
 * unfinished stream: resetting finished ones trips the peer's rapid-reset limiter (DESIGN.md
 * decision 3).
 */
export function splicedH2Stream(stream: Http2Stream): SplicedStream {
  return {
    stream,
    wasReset: () => stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR,
    reset: () => {
      if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_CONNECT_ERROR);
    },
  };
}
