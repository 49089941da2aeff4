// The entry of a flattened filesystem: what the flatten stage emits and every sink consumes
// (directory writer, tar export, browse index). Paths are already normalised and confined.
import type { Readable } from 'node:stream';
import type { SparseSegment } from './sparse.ts';

export type FsEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char-device' | 'block-device' | 'fifo';

export interface FsEntry {
  /**
   * Relative to the root, normalised: no leading `/` or `./`, no `.` or `..` components, no
   * trailing `/`, never empty (the root directory itself is `.`).
   */
  path: string;
  type: FsEntryType;
  /** Permission bits including setuid, setgid and sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  /** Seconds since the epoch, possibly fractional (PAX mtime). */
  mtime: number;
  /** Content length for files; 0 for everything else. */
  size: number;
  /** Symlink target exactly as the layer gave it; for hardlinks, the normalised path of the entry linked to. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes, values byte for byte (security.capability is binary). */
  xattrs: Map<string, Buffer>;
  /**
   * Sparse files: where data goes, in order (everything else is a hole of zeros); `size` is the
   * whole file's. Absent for every other file.
   */
  sparse?: SparseSegment[];
}

/**
 * A file whose content a sink already holds, written while pass 1 read its layer (the directory
 * writer's staged copy), with the metadata it was given then. Only a sink that staged contents is
 * given entries that carry one.
 */
export interface StagedContent {
  path: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
}

/** Where emit finds staged contents: by the layer index and header offset that name a content. */
export interface StagedContents {
  /** The staged content for that source, or undefined (then the layer is read). Each is taken once. */
  take(layer: number, offset: number): StagedContent | undefined;
}

/**
 * An entry as emitted by the flatten stage: files carry a body of exactly `size` bytes, or (for a
 * sink that staged them) `staged` instead. For a sparse file (`sparse` set) the body carries the
 * stored data only, the segments' bytes one after the other: a sink writes each at its offset and
 * leaves the holes (or expands them itself, see expandSparse).
 */
export interface FlatEntry extends FsEntry {
  body?: Readable;
  staged?: StagedContent;
}
