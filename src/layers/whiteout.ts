// Whiteout names (OCI image-spec layer.md, inherited from AUFS): `DIR/.wh.NAME` removes NAME from
// the layers below, `DIR/.wh..wh..opq` hides everything the layers below put in DIR. Other
// `.wh..wh.` names are AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`) and are ignored.
// Classification works on normalised paths; the caller applies the result to its tree.
import { ImgxError } from '../errors.ts';
import { ROOT, baseName, parentOf } from './normalise-path.ts';

export const WHITEOUT_PREFIX = '.wh.';
export const WHITEOUT_META_PREFIX = '.wh..wh.';
export const WHITEOUT_OPAQUE = '.wh..wh..opq';

export type WhiteoutKind =
  /** An ordinary entry. */
  | { kind: 'none' }
  /** Removes `target` (and its subtree) as the lower layers left it. */
  | { kind: 'whiteout'; target: string }
  /** Removes every child of `dir` that the lower layers put there; `dir` itself stays. */
  | { kind: 'opaque'; dir: string }
  /** AUFS metadata (or something under it): not part of the filesystem, dropped. */
  | { kind: 'meta' };

export class BadWhiteoutError extends ImgxError {
  constructor(message: string) {
    super('IMGX_BAD_WHITEOUT', message);
  }
}

/**
 * What a normalised member path means. Throws IMGX_BAD_WHITEOUT for whiteouts that name nothing
 * (`.wh.`), the directory itself or its parent (`.wh..`, `.wh...`), and for ordinary entries placed
 * inside a whiteout (`a/.wh.b/c`), which no layer writer produces.
 */
export function classifyWhiteout(path: string): WhiteoutKind {
  if (!path.includes(WHITEOUT_PREFIX)) return { kind: 'none' };
  const parts = path.split('/');
  for (let i = 0; i < parts.length - 1; i++) {
    const p = parts[i]!;
    if (!p.startsWith(WHITEOUT_PREFIX)) continue;
    // `.wh..wh.plnk/123…` are AUFS's hardlink stash: skip them like their parent.
    if (p.startsWith(WHITEOUT_META_PREFIX)) return { kind: 'meta' };
    throw new BadWhiteoutError(`entry inside a whiteout: ${JSON.stringify(path)}`);
  }
  const base = baseName(path);
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'none' };
  const dir = parentOf(path);
  if (base === WHITEOUT_OPAQUE) return { kind: 'opaque', dir };
  if (base.startsWith(WHITEOUT_META_PREFIX)) return { kind: 'meta' };
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === '' || name === '.' || name === '..' || name.includes('/')) {
    throw new BadWhiteoutError(`malformed whiteout ${JSON.stringify(path)}`);
  }
  return { kind: 'whiteout', target: dir === ROOT ? name : `${dir}/${name}` };
}
