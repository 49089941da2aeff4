// Browsing a flattened image without extracting it: path lookup inside the tree (symlinks followed
// against the tree, never the host, and never above its root), `ls`-style listings, and their
// human and JSON renderings. Pure: everything comes from a FlatTree.
import { NotFoundError } from '../errors.ts';
import type { FsEntryType } from '../layers/fs-entry.ts';
import type { FlatTree, TreeNode } from '../layers/flat-tree.ts';
import { parsePrintableName, printableName } from '../util/raw-name.ts';

/** Symlinks followed in one lookup before giving up, as Linux does (ELOOP after 40). */
export const MAX_SYMLINK_HOPS = 40;

/** A node found by a lookup: its normalised tree path (`.` for the root) and the node. */
export interface Located {
  path: string;
  node: TreeNode;
}

/** The root when no layer carried a `.` entry: what a runtime would create for it. */
function implicitRoot(): TreeNode {
  return { path: '.', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, xattrs: new Map() };
}

export function nodeAt(tree: FlatTree, path: string): TreeNode | undefined {
  return path === '.' ? (tree.get('.') ?? implicitRoot()) : tree.get(path);
}

function keyOf(parts: string[]): string {
  return parts.length === 0 ? '.' : parts.join('/');
}

/** `/` + the tree path: how paths are shown to people and in JSON. */
export function displayPath(path: string): string {
  return path === '.' ? '/' : `/${path}`;
}

function split(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

/**
 * Finds `input` (absolute or relative to the root, the same thing here) in the tree, component by
 * component as the kernel would inside a chroot: `..` stops at the root, symlinks met on the way
 * are followed (absolute targets from the image root), the last one only with `followFinal`.
 * Throws IMGX_NOT_FOUND for a missing path, a component that is not a directory, or a loop.
 */
export function lookup(tree: FlatTree, input: string, opts: { followFinal: boolean }): Located {
  try {
    return lookupAs(tree, input, opts);
  } catch (e) {
    // A name given as ls prints it (`caf\xe9`: bytes that are not UTF-8, control characters),
    // when no path has it literally.
    const unescaped = parsePrintableName(input);
    if (unescaped === input || !(e instanceof NotFoundError)) throw e;
    try {
      return lookupAs(tree, unescaped, opts);
    } catch {
      throw e;
    }
  }
}

function lookupAs(tree: FlatTree, input: string, opts: { followFinal: boolean }): Located {
  const pending = split(input);
  const resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const c = pending.shift()!;
    if (c === '..') {
      resolved.pop();
      continue;
    }
    resolved.push(c);
    const here = keyOf(resolved);
    const node = tree.get(here);
    if (!node) throw new NotFoundError('IMGX_NOT_FOUND', `${printableName(input)}: no such file or directory in the image${here !== keyOf(split(input)) ? ` (looking for ${printableName(displayPath(here))})` : ''}`);
    const last = pending.length === 0;
    if (node.type === 'symlink' && (!last || opts.followFinal)) {
      if (++hops > MAX_SYMLINK_HOPS) throw new NotFoundError('IMGX_NOT_FOUND', `${printableName(input)}: too many levels of symbolic links in the image`);
      const target = node.linkname ?? '';
      resolved.pop();
      if (target.startsWith('/')) resolved.length = 0;
      pending.unshift(...split(target));
      continue;
    }
    if (!last && node.type !== 'directory') throw new NotFoundError('IMGX_NOT_FOUND', `${printableName(input)}: ${printableName(displayPath(here))} is not a directory in the image`);
  }
  const path = keyOf(resolved);
  return { path, node: nodeAt(tree, path)! };
}

/** Regular-file view of a node: hardlinks are files that share their inode's content. */
export function isRegular(node: TreeNode): boolean {
  return node.type === 'file' || node.type === 'hardlink';
}

/** A file's content length; a hardlink node takes it from its inode's content source. */
export function sizeOf(tree: FlatTree, node: TreeNode): number {
  if (node.type === 'hardlink') return tree.contentSource(node.path)?.size ?? node.size;
  return node.type === 'file' ? node.size : 0;
}

// ---- listings ---------------------------------------------------------------------------------

/** One line of a listing: `name` is what `ls` prints (relative to the listed directory, or the argument as given). */
export interface Listed {
  name: string;
  path: string;
  node: TreeNode;
}

export interface ListOptions {
  long?: boolean;
  recursive?: boolean;
}

/**
 * What `ls PATH` shows: the entries of a directory (dotfiles included, as `ls -A`), or PATH itself
 * when it is not one. As GNU ls does with its arguments, a symlink named by PATH is followed to a
 * directory unless `long` (a trailing slash always follows it). With `recursive`, the whole subtree
 * in pre-order, names relative to PATH; symlinks inside are never followed.
 */
export function listPath(tree: FlatTree, input: string, opts: ListOptions = {}): Listed[] {
  const trailingSlash = /\/\.?$/.test(input) && split(input).length > 0;
  let at = lookup(tree, input, { followFinal: trailingSlash });
  if (at.node.type === 'symlink' && !opts.long) {
    try {
      const target = lookup(tree, input, { followFinal: true });
      if (target.node.type === 'directory') at = target;
    } catch {
      // A dangling or looping link is listed as itself, as ls does.
    }
  }
  if (trailingSlash && at.node.type !== 'directory') throw new NotFoundError('IMGX_NOT_FOUND', `${printableName(input)}: not a directory in the image`);
  if (at.node.type !== 'directory') return [{ name: input, path: at.path, node: at.node }];
  const out: Listed[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const child of tree.children(dir)) {
      const base = child.path.slice(child.path.lastIndexOf('/') + 1);
      const name = prefix + base;
      out.push({ name, path: child.path, node: child });
      if (opts.recursive && child.type === 'directory') walk(child.path, `${name}/`);
    }
  };
  walk(at.path, '');
  return out;
}

// ---- rendering --------------------------------------------------------------------------------

const TYPE_CHAR: Record<FsEntryType, string> = {
  file: '-',
  hardlink: '-',
  directory: 'd',
  symlink: 'l',
  'char-device': 'c',
  'block-device': 'b',
  fifo: 'p',
};

/** `drwxr-xr-x`, with s/S and t/T for setuid, setgid and sticky, as ls prints them. */
export function modeString(type: FsEntryType, mode: number): string {
  const rwx = (bits: number, special: boolean, on: string, off: string) =>
    (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (special ? (bits & 1 ? on : off) : bits & 1 ? 'x' : '-');
  return (
    TYPE_CHAR[type] +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's', 'S') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's', 'S') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't', 'T')
  );
}

/** Mtimes in UTC, so a listing is the same on every machine. */
export function formatMtime(seconds: number): string {
  const d = new Date(Math.floor(seconds) * 1000);
  if (Number.isNaN(d.getTime())) return '?';
  return d.toISOString().slice(0, 16).replace('T', ' ');
}

/** The stable `ls --json` record. */
export interface ListRecord {
  path: string;
  type: FsEntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

export function listRecord(tree: FlatTree, l: Listed): ListRecord {
  const n = l.node;
  const type = n.type === 'hardlink' ? 'file' : n.type;
  return {
    path: displayPath(l.path),
    type,
    mode: n.mode & 0o7777,
    uid: n.uid,
    gid: n.gid,
    size: sizeOf(tree, n),
    mtime: n.mtime,
    ...(n.type === 'symlink' ? { linkname: n.linkname ?? '' } : {}),
    ...(n.type === 'char-device' || n.type === 'block-device' ? { devmajor: n.devmajor ?? 0, devminor: n.devminor ?? 0 } : {}),
  };
}

/** The `ls -l` columns of one entry: mode, uid, gid, size (major, minor for devices), mtime, name. */
export function longRow(tree: FlatTree, l: Listed): string[] {
  const n = l.node;
  const size = n.type === 'char-device' || n.type === 'block-device' ? `${n.devmajor ?? 0}, ${n.devminor ?? 0}` : String(sizeOf(tree, n));
  const name = n.type === 'symlink' ? `${printableName(l.name)} -> ${printableName(n.linkname ?? '')}` : printableName(l.name);
  return [modeString(n.type, n.mode), String(n.uid), String(n.gid), size, formatMtime(n.mtime), name];
}

/** Right-aligned numeric columns, as ls aligns them. */
export function renderLong(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const right = new Set([1, 2, 3]);
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' ')).join('\n');
}
