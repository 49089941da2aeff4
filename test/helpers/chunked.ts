// A buffer as a stream of `size`-byte chunks, so that headers and frames straddle chunk boundaries.
import { Readable } from 'node:stream';

export function chunked(buf: Buffer, size = 1 << 16): Readable {
  let pos = 0;
  return new Readable({
    read() {
      if (pos >= buf.length) return void this.push(null);
      this.push(buf.subarray(pos, pos + size));
      pos += size;
    },
  });
}
