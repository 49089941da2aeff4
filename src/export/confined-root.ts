// Resolution of paths inside a destination root without ever following a symlink. Node has no
// openat(), so confinement is by lstat: every ancestor of a path must be a real directory inside
// the root. The root is a fresh 0700 staging directory that only this process writes, so what was
// verified once stays true; verified directories are cached to avoid an lstat storm.
import { lstat } from 'node:fs/promises';
import { parentOf, unsafePath } from './safe-path.ts';

export interface ConfinedRootHooks {
  /** Called for a missing ancestor, which must then exist as a directory when it resolves. */
  createMissing(rel: string): Promise<void>;
  /** A pending write at this path, to wait for before looking at it (or undefined). */
  pending(rel: string): Promise<void> | undefined;
}

export class ConfinedRoot {
  readonly root: string;
  private readonly dirs = new Set<string>(['']);
  private readonly hooks: ConfinedRootHooks;

  constructor(root: string, hooks: ConfinedRootHooks) {
    this.root = root;
    this.hooks = hooks;
  }

  abs(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`;
  }

  isVerifiedDir(rel: string): boolean {
    return this.dirs.has(rel);
  }

  markDir(rel: string): void {
    this.dirs.add(rel);
  }

  /** Forgets `rel` and everything under it (after it was removed or replaced). */
  forget(rel: string): void {
    const prefix = `${rel}/`;
    for (const d of this.dirs) if (d === rel || d.startsWith(prefix)) this.dirs.delete(d);
  }

  /**
   * Makes sure every ancestor of `rel` (a validated relative path) is a real directory inside the
   * root. Missing ancestors are created through the hook when `create` is set; otherwise the
   * answer is false. An ancestor that is a symlink or not a directory: IMGX_UNSAFE_PATH.
   */
  async parentReady(rel: string, create: boolean): Promise<boolean> {
    const parent = parentOf(rel);
    if (this.dirs.has(parent)) return true;
    let prefix = '';
    for (const part of parent.split('/')) {
      prefix = prefix ? `${prefix}/${part}` : part;
      if (this.dirs.has(prefix)) continue;
      await this.hooks.pending(prefix);
      const st = await lstat(this.abs(prefix)).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      });
      if (!st) {
        if (!create) return false;
        await this.hooks.createMissing(prefix);
      } else if (st.isSymbolicLink()) {
        throw unsafePath(rel, `${prefix} is a symlink`);
      } else if (!st.isDirectory()) {
        throw unsafePath(rel, `${prefix} is not a directory`);
      }
      this.dirs.add(prefix);
    }
    return true;
  }
}
