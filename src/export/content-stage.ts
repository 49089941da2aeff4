// Pass 1 of an extract reads every byte of every layer anyway (for the diff_id), so the contents of
// regular files are written out as they go by, each to a file of its own in a private 0700
// directory beside the destination, named by layer index and header offset (numbers: nothing from
// the layer names a path here), with its owner, mode and times applied. Pass 2 then renames the
// surviving ones into the tree: no layer is read twice, no spool, and the data is written while
// the layers download and inflate. Contents that a later layer replaced or removed are deleted
// with the directory at the end.
import fs from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { ImgxError } from '../errors.ts';
import type { StagedContent, StagedContents } from '../layers/fs-entry.ts';
import type { ContentSink, ScanEntry } from '../layers/scan.ts';
import { applyFileMeta, createFile, fileMetaFor, writeAll, type WriterIdentity } from './fd-ops.ts';
import { removeTree } from './remove-tree.ts';

export class ContentStage implements ContentSink, StagedContents {
  readonly dir: string;
  private readonly who: WriterIdentity;
  private readonly staged = new Map<string, StagedContent>();
  private stopped = false;
  private removing: Promise<void> | undefined;

  private constructor(dir: string, who: WriterIdentity) {
    this.dir = dir;
    this.who = who;
  }

  /** `dir` must not exist; it is made 0700. */
  static async create(dir: string, who: WriterIdentity): Promise<ContentStage> {
    await mkdir(dir, { mode: 0o700 });
    return new ContentStage(dir, who);
  }

  async file(layer: number, offset: number, entry: ScanEntry, readBody: (sink: (chunk: Buffer) => void) => Promise<void>): Promise<void> {
    if (this.stopped) throw new ImgxError('IMGX_INTERRUPTED', 'interrupted');
    const key = `${layer}-${offset}`;
    const path = `${this.dir}/${key}`;
    // Names are unique per layer and offset; should one exist anyway, it is this stage's own file.
    const fd = createFile(path, entry.mode, () => fs.unlinkSync(path));
    try {
      let n = 0;
      await readBody((chunk) => {
        n += chunk.length;
        writeAll(fd, chunk);
      });
      if (n !== entry.size) throw new ImgxError('IMGX_BAD_LAYER', `${entry.path}: the content is ${n} bytes, its header says ${entry.size}`);
      applyFileMeta(fd, fileMetaFor(entry, this.who));
    } finally {
      fs.closeSync(fd);
    }
    this.staged.set(key, { path, mode: entry.mode & 0o7777, uid: entry.uid, gid: entry.gid, mtime: entry.mtime });
  }

  take(layer: number, offset: number): StagedContent | undefined {
    const key = `${layer}-${offset}`;
    const s = this.staged.get(key);
    if (s) this.staged.delete(key);
    return s;
  }

  /** Removes the directory with whatever was not taken, and stages nothing more (idempotent). */
  dispose(): Promise<void> {
    this.stopped = true;
    this.staged.clear();
    return (this.removing ??= removeTree(this.dir));
  }
}
