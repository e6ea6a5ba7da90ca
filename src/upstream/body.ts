// Reading small upstream bodies (errors, tokens, manifests) with a hard cap, so a hostile upstream cannot
// make us buffer without bound.
import type { Readable } from 'node:stream';
import { UpstreamContentError } from './errors.js';

const ERROR_BODY_LIMIT = 64 * 1024;

/** Reads at most `limit` bytes. Past it: `truncate` keeps the head; otherwise throws. Always ends the body. */
export async function readCapped(body: Readable, limit = ERROR_BODY_LIMIT, truncate = true): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length > limit) {
        if (!truncate) throw new UpstreamContentError(`upstream body larger than ${limit} bytes`);
        chunks.push(chunk.subarray(0, chunk.length - (length - limit)));
        break;
      }
      chunks.push(chunk);
    }
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks);
}

/** Drops a body we do not need, without throwing. */
export function discard(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}
