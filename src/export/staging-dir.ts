// The destination of an extract is built in a sibling staging directory (`.DEST.imgx-<random>`,
// mode 0700 so nobody else can reach into it while it is built) and renamed into place at the end:
// an interrupted or failed extract leaves nothing that looks complete.
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ImgxError } from '../errors.ts';
import { removeTree } from './remove-tree.ts';

function destExists(dest: string): ImgxError {
  return new ImgxError('IMGX_DEST_EXISTS', `${dest} already exists and is not an empty directory`);
}

/** DEST must not exist, or be an empty directory (not a symlink to one). Its contents are never touched. */
export async function checkDestination(dest: string): Promise<void> {
  const st = await lstat(dest).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!st) return;
  if (!st.isDirectory()) throw destExists(dest);
  if ((await readdir(dest)).length > 0) throw destExists(dest);
}

export class StagingDir {
  readonly path: string;
  readonly dest: string;
  private done = false;
  private removing: Promise<void> | undefined;

  private constructor(dest: string, path: string) {
    this.dest = dest;
    this.path = path;
  }

  /** `dest` must be absolute. Its parent is created when missing. */
  static async create(dest: string): Promise<StagingDir> {
    const parent = dirname(dest);
    await mkdir(parent, { recursive: true });
    const path = join(parent, `.${basename(dest)}.imgx-${randomBytes(6).toString('hex')}`);
    await mkdir(path, { mode: 0o700 });
    return new StagingDir(dest, path);
  }

  /** Renames the finished tree into place (over an empty directory, which rename allows). */
  async commit(): Promise<void> {
    try {
      await rename(this.path, this.dest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') throw destExists(this.dest);
      throw e;
    }
    this.done = true;
  }

  /** Removes the staging tree (idempotent: every caller waits for the one removal; nothing once committed). */
  discard(): Promise<void> {
    if (this.done) return this.removing ?? Promise.resolve();
    this.done = true;
    this.removing = removeTree(this.path);
    return this.removing;
  }
}
