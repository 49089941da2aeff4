// Lexical normalisation of tar member names (and hardlink targets) into FsEntry paths. Nothing
// here looks at a filesystem and nothing resolves symlinks: `..` is resolved against the name's own
// components only, and never climbs above the root (it is clamped there, as GNU tar and umoci do).
import { ImgxError } from '../errors.ts';

export interface NormalisedPath {
  /** Relative, no `.`/`..`/empty components, no leading or trailing `/`; the root is `.`. */
  path: string;
  /** True when the name was absolute or a `..` would have left the root: it was confined. */
  clamped: boolean;
}

/** The path of the root directory itself. */
export const ROOT = '.';

/**
 * Normalises a member name: `./` and `//` collapse, `.` and `..` resolve lexically. Throws
 * IMGX_UNSAFE_PATH for names that cannot be a path at all (NUL bytes). `clamped` reports an
 * absolute name or a `..` that tried to leave the root, so the caller can warn with context.
 */
export function normalisePath(name: string): NormalisedPath {
  if (name.includes('\0')) throw new ImgxError('IMGX_UNSAFE_PATH', `member name with a NUL byte: ${JSON.stringify(name.slice(0, 200))}`);
  // Fast path: most names in real layers are already clean (`usr/bin/x`, `usr/lib/`).
  if (isClean(name)) return { path: name.endsWith('/') ? name.slice(0, -1) : name, clamped: false };
  const out: string[] = [];
  let clamped = name.charCodeAt(0) === 0x2f;
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) clamped = true;
      else out.pop();
      continue;
    }
    out.push(part);
  }
  return { path: out.length === 0 ? ROOT : out.join('/'), clamped };
}

/** Already normal: not empty, no leading `/`, no empty, `.` or `..` component (one trailing `/` allowed). */
function isClean(name: string): boolean {
  if (name === '' || name.charCodeAt(0) === 0x2f) return false;
  const end = name.endsWith('/') ? name.length - 1 : name.length;
  if (end === 0) return false;
  let start = 0;
  while (start <= end) {
    let slash = name.indexOf('/', start);
    if (slash < 0 || slash > end) slash = end;
    const len = slash - start;
    if (len === 0) return false;
    if (name.charCodeAt(start) === 0x2e && (len === 1 || (len === 2 && name.charCodeAt(start + 1) === 0x2e))) return false;
    start = slash + 1;
  }
  return true;
}

/** The parent of a normalised path (`.` for top-level names and for the root). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? ROOT : path.slice(0, i);
}

/** The last component of a normalised path. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The components of a normalised path (none for the root). */
export function splitPath(path: string): string[] {
  return path === ROOT ? [] : path.split('/');
}

/** Joins a normalised directory path and one component. */
export function joinPath(dir: string, name: string): string {
  return dir === ROOT ? name : `${dir}/${name}`;
}
