// The destination of an extract is built in a sibling staging directory (`.DEST.imgx-<random>`,
// mode 0700 so nobody else can reach into it while it is built) and renamed into place at the end:
// an interrupted or failed extract leaves nothing that looks complete.
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rename, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ImgxError } from '../errors.ts';
import { ioError } from '../io-errors.ts';
import { removeTree } from './remove-tree.ts';

function destExists(dest: string): ImgxError {
  return new ImgxError('IMGX_DEST_EXISTS', `${dest} already exists and is not an empty directory`);
}

/** DEST must not exist, or be an empty directory (not a symlink to one). Its contents are never touched. */
export async function checkDestination(dest: string): Promise<void> {
  const st = await lstat(dest).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw ioError(e, `cannot read ${dest}`);
  });
  if (!st) return;
  if (!st.isDirectory()) throw destExists(dest);
  const names = await readdir(dest).catch((e: unknown) => {
    throw ioError(e, `cannot read ${dest}`);
  });
  if (names.length > 0) throw destExists(dest);
}

export class StagingDir {
  readonly path: string;
  readonly dest: string;
  private done = false;
  private committed = false;
  private removing: Promise<void> | undefined;
  /** The topmost parent directory of DEST that create() made, if any: removed again by discard(). */
  private readonly madeParent: string | undefined;

  private constructor(dest: string, path: string, madeParent: string | undefined) {
    this.dest = dest;
    this.path = path;
    this.madeParent = madeParent;
  }

  /**
   * `dest` must be absolute. Its parent is created when missing (and removed again by discard()).
   * A failure is IMGX_IO naming DEST, and leaves nothing.
   */
  static async create(dest: string): Promise<StagingDir> {
    const parent = dirname(dest);
    const path = join(parent, `.${basename(dest)}.imgx-${randomBytes(6).toString('hex')}`);
    let madeParent: string | undefined;
    try {
      madeParent = await mkdir(parent, { recursive: true });
      await mkdir(path, { mode: 0o700 });
    } catch (e) {
      await removeMadeParents(parent, madeParent);
      throw ioError(e, `cannot write ${dest}`);
    }
    return new StagingDir(dest, path, madeParent);
  }

  /** Renames the finished tree into place (over an empty directory, which rename allows). */
  async commit(): Promise<void> {
    try {
      await rename(this.path, this.dest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') throw destExists(this.dest);
      throw ioError(e, `cannot write ${this.dest}`);
    }
    this.done = true;
    this.committed = true;
  }

  /** Removes the staging tree (idempotent: every caller waits for the one removal; nothing once committed). */
  discard(): Promise<void> {
    if (this.done) return this.removing ?? Promise.resolve();
    this.done = true;
    this.removing = removeTree(this.path).then(() => this.removeParents());
    return this.removing;
  }

  /**
   * The parent directories of DEST that create() made, once they are empty again (discard() does
   * this too; call it again after removing something else that was put beside DEST). Nothing once
   * committed.
   */
  removeParents(): Promise<void> {
    return this.committed ? Promise.resolve() : removeMadeParents(dirname(this.dest), this.madeParent);
  }
}

/** The directories from `dir` up to `top` (made by this process), while they are empty. */
async function removeMadeParents(dir: string, top: string | undefined): Promise<void> {
  if (top === undefined) return;
  for (let d = dir; d.length >= top.length; d = dirname(d)) {
    try {
      await rmdir(d);
    } catch {
      return; // not empty (someone else's now), or already gone
    }
    if (d === top) return;
  }
}
