// Which logical blocks of a regular file hold data: all of them for an ordinary file; for a sparse
// file (FsEntry.sparse) only those a segment touches, a block partly covered allocated whole. The
// others are holes: no block, no extent, and ext4 reads them as zeros. The planner allocates these
// runs and the size estimate (fs-size.ts) counts them, so both agree.
import type { SparseSegment } from '../../layers/sparse.ts';
import { BLOCK_SIZE } from './format.ts';

/** Logical blocks [logical, logical + len) of a file. */
export interface BlockRun {
  logical: number;
  len: number;
}

/**
 * The largest file an extent-mapped inode holds: 32-bit logical block numbers of 4 KiB, less a
 * byte (what e2fsck accepts as i_size).
 */
export const MAX_FILE_BYTES = 2 ** 44 - 1;

/**
 * The runs of blocks holding data, in order, neither overlapping nor touching. Throws (a plain
 * Error: the flatten stage never makes such a map) when the segments are out of order, overlap or
 * pass `size`.
 */
export function dataRuns(size: number, sparse?: readonly SparseSegment[]): BlockRun[] {
  if (!sparse) return size > 0 ? [{ logical: 0, len: Math.ceil(size / BLOCK_SIZE) }] : [];
  const runs: BlockRun[] = [];
  let end = 0;
  for (const s of sparse) {
    if (!Number.isSafeInteger(s.offset) || !Number.isSafeInteger(s.size) || s.offset < end || s.size < 0 || s.offset + s.size > size) {
      throw new Error(`bad sparse map: segment ${s.offset}+${s.size} in a file of ${size} bytes`);
    }
    end = s.offset + s.size;
    if (s.size === 0) continue;
    const first = Math.floor(s.offset / BLOCK_SIZE);
    const last = Math.ceil(end / BLOCK_SIZE); // exclusive
    const prev = runs[runs.length - 1];
    // A block shared with the previous segment, or the next one: one run.
    if (prev && first <= prev.logical + prev.len) prev.len = Math.max(prev.len, last - prev.logical);
    else runs.push({ logical: first, len: last - first });
  }
  return runs;
}

/** Blocks in the runs. */
export function runBlocks(runs: readonly BlockRun[]): number {
  let n = 0;
  for (const r of runs) n += r.len;
  return n;
}

/** Bytes of data a file stores: its size, or for a sparse file the sum of its segments. */
export function storedBytes(size: number, sparse?: readonly SparseSegment[]): number {
  if (!sparse) return size;
  let n = 0;
  for (const s of sparse) n += s.size;
  return n;
}
