// A network-like source for tests of blobs being written: `data` in `piece`-byte chunks with a
// pause between them, then an error (`fail`) or the end.
import { Readable } from 'node:stream';

export function slowSource(data: Buffer, piece: number, fail?: Error): Readable {
  let pos = 0;
  return new Readable({
    read() {
      setTimeout(() => {
        if (pos >= data.length) {
          if (fail) this.destroy(fail);
          else this.push(null);
          return;
        }
        this.push(data.subarray(pos, pos + piece));
        pos += piece;
      }, 1);
    },
  });
}
