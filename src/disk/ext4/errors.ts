// What ext4 (as this writer makes it: no 64bit, no ea_inode, no large_dir) cannot hold from a
// layer, as a coded error (IMGX_UNSUPPORTED, exit 10) naming the entry: a file past 16 TiB, an
// xattr too large for one block, 65,000 hardlinks to one file, a file named lost+found. The
// flatten stage accepts these (Docker would fail to unpack some of them too); they are never exit 1.
import { ImgxError } from '../../errors.ts';

export class Ext4LimitError extends ImgxError {
  constructor(message: string) {
    super('IMGX_UNSUPPORTED', `ext4: ${message}`);
  }
}
