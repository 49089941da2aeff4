// Path checks for sinks that write to a real filesystem. The flatten stage already normalises
// names, but a sink trusts nothing: a name that is not a plain relative path (empty component, `.`,
// `..`, leading `/`, NUL) is refused, never "fixed".
import { ImgxError } from '../errors.ts';

export function unsafePath(path: string, why: string): ImgxError {
  return new ImgxError('IMGX_UNSAFE_PATH', `unsafe path ${JSON.stringify(path)} in the image: ${why}`);
}

/** The components of a normalised relative path; `.` (the root) gives []. Throws IMGX_UNSAFE_PATH. */
export function pathComponents(path: string): string[] {
  if (path === '.') return [];
  if (path === '') throw unsafePath(path, 'empty name');
  if (path.includes('\0')) throw unsafePath(path, 'NUL in the name');
  if (path.startsWith('/')) throw unsafePath(path, 'absolute name');
  const parts = path.split('/');
  for (const p of parts) {
    if (p === '' || p === '.' || p === '..') throw unsafePath(path, `"${p}" component`);
  }
  return parts;
}

/** The parent of a validated relative path ('' for a top-level name). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}
