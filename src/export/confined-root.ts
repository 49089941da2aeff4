// Resolution of paths inside a destination root without ever following a symlink. Node has no
// openat(), so confinement is by lstat: every ancestor of a path must be a real directory inside
// the root. The root is a fresh 0700 staging directory that only this process writes, so what was
// verified once stays true; verified directories are cached to avoid an lstat storm. Synchronous,
// like the writer's other system calls (see fd-ops.ts).
import { lstatSync } from 'node:fs';
import { fsPath } from '../util/raw-name.ts';
import { parentOf, unsafePath } from './safe-path.ts';

export class ConfinedRoot {
  readonly root: string;
  private readonly dirs = new Set<string>(['']);
  /** Called for a missing ancestor, which must then exist as a directory. */
  private readonly createMissing: (rel: string) => void;

  constructor(root: string, createMissing: (rel: string) => void) {
    this.root = root;
    this.createMissing = createMissing;
  }

  /** The path of `rel` under the root, as a string that keeps a layer's name bytes (give it to node:fs through fsPath). */
  abs(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`;
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
  parentReady(rel: string, create: boolean): boolean {
    const parent = parentOf(rel);
    if (this.dirs.has(parent)) return true;
    let prefix = '';
    for (const part of parent.split('/')) {
      prefix = prefix ? `${prefix}/${part}` : part;
      if (this.dirs.has(prefix)) continue;
      const st = lstatSync(fsPath(this.abs(prefix)), { throwIfNoEntry: false });
      if (!st) {
        if (!create) return false;
        this.createMissing(prefix);
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
