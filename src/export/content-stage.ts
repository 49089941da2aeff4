// Pass 1 of an extract reads every byte of every layer anyway (for the diff_id), so the contents of
// regular files are written out as they go by, with their owner, mode and times applied. Pass 2
// then only has to put the surviving ones in place: no layer is read twice, no spool, and the
// data is written while the layers download and inflate.
//
// Where a content goes: at its own path in the staging tree (the hidden directory that becomes
// DEST), when that path is free, so that pass 2 finds it where it belongs and renames nothing
// (renames are serialised in the kernel: ~14,000 of them were most of an extract's last, single-
// threaded half second). Its missing parent directories are made (0700) on the way. The path is
// not free when an earlier content took it, or a file of another layer sits where one of its
// directories would go (layers are read in parallel, in no set order): then the content goes to a
// private 0700 directory beside DEST instead, named by layer index and header offset (numbers:
// nothing from the layer names a path there), and pass 2 renames it into place.
//
// Safety: pass 1 makes only directories and regular files in the staging tree, under names that
// were normalised (no `..`, no absolute names), and nothing else writes there before pass 2: so
// no symlink can be in the way; the parents are checked as the directory writer checks them all
// the same (confined-root.ts). Once the tree is known, settle() moves beside DEST every content
// that the tree has elsewhere but not at its path, removes those it has nowhere, and removes the
// directories it does not have, so pass 2 starts from a staging tree that holds only what the
// final tree has.
import fs from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { ImgxError } from '../errors.ts';
import type { FlatTree } from '../layers/flat-tree.ts';
import type { StagedContent, StagedContents } from '../layers/fs-entry.ts';
import type { ContentSink, ScanEntry } from '../layers/scan.ts';
import { ConfinedRoot } from './confined-root.ts';
import { fsPath } from '../util/raw-name.ts';
import { CREATE_FILE, applyFileMeta, createFile, fileMetaFor, storedBytes, writeData, type WriterIdentity } from './fd-ops.ts';
import { removeTree } from './remove-tree.ts';
import { parentOf } from './safe-path.ts';

export class ContentStage implements ContentSink, StagedContents {
  readonly dir: string;
  /** The staging tree (DEST-to-be). */
  private readonly root: string;
  private readonly who: WriterIdentity;
  private readonly staged = new Map<string, StagedContent>();
  /** Relative path → content key, for the contents written at their own path. */
  private readonly placed = new Map<string, string>();
  /** Directories this stage made in the staging tree (relative paths); after settle(), the tree's. */
  readonly dirs = new Set<string>();
  private readonly confined: ConfinedRoot;
  private stopped = false;
  private removing: Promise<void> | undefined;
  /**
   * Contents written at their own path, those of them settle() moved beside DEST (another path
   * of the tree has them), and those it removed (no path of the tree has them).
   */
  readonly counts = { inPlace: 0, movedBack: 0, removed: 0 };

  private constructor(dir: string, root: string, who: WriterIdentity) {
    this.dir = dir;
    this.root = root;
    this.who = who;
    this.confined = new ConfinedRoot(root, (rel) => {
      fs.mkdirSync(fsPath(`${root}/${rel}`), 0o700);
      this.dirs.add(rel);
    });
  }

  /**
   * `dir` must not exist; it is made 0700. `root`: the staging tree, made by this process and
   * written by nothing else until the tree is settled.
   */
  static async create(dir: string, root: string, who: WriterIdentity): Promise<ContentStage> {
    await mkdir(dir, { mode: 0o700 });
    return new ContentStage(dir, root, who);
  }

  async file(layer: number, offset: number, entry: ScanEntry, readData: (sink: (chunk: Buffer, offset: number) => void) => Promise<void>): Promise<void> {
    if (this.stopped) throw new ImgxError('IMGX_INTERRUPTED', 'interrupted');
    const key = `${layer}-${offset}`;
    let at = this.place(entry.path, entry.mode);
    if (at) {
      this.placed.set(entry.path, key);
      this.counts.inPlace++;
    } else {
      const flat = this.beside(key);
      // Names are unique per layer and offset; should one exist anyway, it is this stage's own file.
      at = { abs: flat, fd: createFile(flat, entry.mode, () => fs.unlinkSync(flat)) };
    }
    const fd = at.fd;
    try {
      // A sparse file's holes are left unwritten: a 60 GB file with 600 bytes of data takes 600.
      const n = await writeData(fd, entry.size, readData, entry.sparse !== undefined);
      const want = storedBytes(entry.size, entry.sparse);
      if (n !== want) throw new ImgxError('IMGX_BAD_LAYER', `${entry.path}: the content is ${n} bytes, its header says ${want}`);
      applyFileMeta(fd, fileMetaFor(entry, this.who));
    } finally {
      fs.closeSync(fd);
    }
    this.staged.set(key, { path: at.abs, mode: entry.mode & 0o7777, uid: entry.uid, gid: entry.gid, mtime: entry.mtime });
  }

  /**
   * Creates the file at `rel` in the staging tree, with its missing parents, if nothing claimed
   * that path or a parent's; undefined otherwise (or if the system refuses, e.g. a name too long).
   */
  private place(rel: string, mode: number): { abs: string; fd: number } | undefined {
    if (this.placed.has(rel) || this.dirs.has(rel)) return undefined;
    try {
      // The safe writer's own check: every parent a real directory inside the root (a content
      // placed where a parent would go refuses, as would anything but a directory).
      this.confined.parentReady(rel, true);
    } catch {
      return undefined;
    }
    const abs = `${this.root}/${rel}`;
    try {
      return { abs, fd: fs.openSync(fsPath(abs), CREATE_FILE, mode & 0o777) };
    } catch {
      return undefined;
    }
  }

  /**
   * Once the tree is known, before pass 2: every content written at a path where the tree has
   * another (or nothing) moves beside DEST, where pass 2 finds it by its key, or is removed if no
   * path of the tree has it; then every directory made here that the tree does not have as a
   * directory is removed (empty of files by then).
   */
  settle(tree: FlatTree): void {
    let live: Set<string> | undefined;
    for (const [rel, key] of this.placed) {
      const src = tree.contentSource(rel);
      if (src && `${src.layer}-${src.offset}` === key) continue;
      this.placed.delete(rel);
      // Most of these were replaced by a later layer and are no one's content: removed here, not
      // moved aside to be removed with the leftovers (a rename saved for each).
      live ??= this.liveKeys(tree);
      if (!live.has(key)) {
        fs.unlinkSync(fsPath(`${this.root}/${rel}`));
        this.staged.delete(key);
        this.counts.removed++;
        continue;
      }
      const flat = this.beside(key);
      fs.renameSync(fsPath(`${this.root}/${rel}`), flat);
      const s = this.staged.get(key);
      if (s) s.path = flat;
      this.counts.movedBack++;
    }
    // Parents before children (sorted, a parent comes first): a removed directory takes its
    // subdirectories with it.
    for (const d of [...this.dirs].sort()) {
      const parent = parentOf(d);
      if (parent !== '' && !this.dirs.has(parent)) this.dirs.delete(d);
      else if (tree.get(d)?.type !== 'directory') {
        fs.rmSync(fsPath(`${this.root}/${d}`), { recursive: true });
        this.dirs.delete(d);
      }
    }
  }

  /** The keys of every content the tree has (at any of its paths: hardlinks share one). */
  private liveKeys(tree: FlatTree): Set<string> {
    const keys = new Set<string>();
    for (let ino = 1; ino <= tree.inodeCount; ino++) {
      const src = tree.sourceOfInode(ino);
      if (src) keys.add(`${src.layer}-${src.offset}`);
    }
    return keys;
  }

  /** Where the content `key` goes beside DEST. */
  private beside(key: string): string {
    return `${this.dir}/${key}`;
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
