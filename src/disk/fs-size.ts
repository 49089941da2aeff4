// How big the root filesystem must be, computed from the tree: ext4 blocks of every file (hardlinks
// once), directory blocks, long symlinks, inode tables, the journal mke2fs will make, group
// metadata and the 5 % reserved for root. `--size auto` adds headroom on top; an explicit size below
// the minimum is refused before anything is written. A sparse file counts the blocks its data takes
// (and its extent tree), never its holes: a 60 GB file with a few KB of data is a few blocks.
import { dataRuns, runBlocks, storedBytes } from './ext4/data-blocks.ts';
import { treeBlocksFor } from './ext4/format.ts';
import { treeEntries, type SourcedEntry } from './ext4/tree-source.ts';
import { nameByteLength } from '../util/raw-name.ts';
import type { ExtraEntry } from './rootfs-builder.ts';
import { EXT4_BLOCK_SIZE, EXT4_INODE_SIZE } from './mke2fs-builder.ts';

const MIB = 1024 * 1024;
const BLOCKS_PER_GROUP = 32768;
/** Symlink targets shorter than this live in the inode. */
const FAST_SYMLINK_MAX = 59;

export interface TreeUsage {
  inodes: number;
  /** 4 KiB blocks the contents take (files, directories, long symlinks). */
  blocks: number;
  /** Bytes of file content (for messages): a sparse file's data, not its holes. */
  bytes: number;
}

const blocksOf = (bytes: number) => Math.ceil(bytes / EXT4_BLOCK_SIZE);

/** A directory tree's usage: walked with lstat as the native writer walks it (no symlink followed). */
export async function measureTree(root: string): Promise<TreeUsage> {
  return usageOfEntries((await treeEntries(root, { xattrs: false })).entries);
}

/** The usage of writer entries (a walked tree, or the flattened layers): hardlinks count once. */
export function usageOfEntries(entries: Map<string, SourcedEntry>): TreeUsage {
  const usage: TreeUsage = { inodes: 1, blocks: 0, bytes: 0 };
  // A directory entry is 8 bytes plus the name rounded to 4; plus "." and ".." (24).
  const dirBytes = new Map<string, number>([['.', 24]]);
  for (const [path, { entry }] of entries) {
    if (path === '.') continue;
    const slash = path.lastIndexOf('/');
    const parent = slash < 0 ? '.' : path.slice(0, slash);
    dirBytes.set(parent, (dirBytes.get(parent) ?? 24) + 8 + Math.ceil(nameByteLength(path.slice(slash + 1)) / 4) * 4);
    if (entry.type === 'hardlink') continue;
    usage.inodes++;
    if (entry.type === 'directory') dirBytes.set(path, dirBytes.get(path) ?? 24);
    else if (entry.type === 'file' && entry.sparse) {
      // The blocks the writer allocates (data-blocks.ts), and the extent tree of a fragmented map.
      const runs = dataRuns(entry.size, entry.sparse);
      usage.bytes += storedBytes(entry.size, entry.sparse);
      usage.blocks += runBlocks(runs) + treeBlocksFor(runs.length);
    } else if (entry.type === 'file') {
      usage.bytes += entry.size;
      // Extent tree blocks for very fragmented large files are left to the metadata margin.
      usage.blocks += blocksOf(entry.size);
    } else if (entry.type === 'symlink' && nameByteLength(entry.linkname ?? '') > FAST_SYMLINK_MAX) usage.blocks += 1;
  }
  for (const b of dirBytes.values()) usage.blocks += Math.max(1, blocksOf(b));
  return usage;
}

export function addExtras(usage: TreeUsage, extras: ExtraEntry[]): TreeUsage {
  let { inodes, blocks, bytes } = usage;
  for (const e of extras) {
    inodes++;
    if (e.type === 'file') {
      const n = Buffer.byteLength(e.content);
      blocks += blocksOf(n);
      bytes += n;
    } else if (e.type === 'dir') blocks += 1;
  }
  return { inodes, blocks, bytes };
}

/** mke2fs's journal for a filesystem of `blocks` 4 KiB blocks (ext2fs_default_journal_size). */
export function journalBlocks(blocks: number): number {
  if (blocks < 32768) return 1024;
  if (blocks < 256 * 1024) return 4096;
  if (blocks < 512 * 1024) return 8192;
  if (blocks < 4096 * 1024) return 16384;
  if (blocks < 8192 * 1024) return 32768;
  if (blocks < 16384 * 1024) return 65536;
  if (blocks < 32768 * 1024) return 131072;
  return 262144;
}

/** Inodes to ask mke2fs for: room for a quarter more files, at least mke2fs's own default. */
export function inodesFor(usage: TreeUsage, fsBytes: number): number {
  return Math.max(Math.ceil(usage.inodes * 1.25) + 4096, Math.floor(fsBytes / 16384));
}

/** Bytes of everything but contents and inode tables: group descriptors, bitmaps, reserved GDT. */
function groupMetadataBlocks(blocks: number): number {
  const groups = Math.ceil(blocks / BLOCKS_PER_GROUP);
  // Two bitmaps per group, descriptors (64 bytes each) and the resize reserve (~1024 GDT blocks max).
  return groups * 2 + 2 * blocksOf(groups * 64) + Math.min(1024, groups) + 64;
}

/** The smallest filesystem (bytes, whole MiB) that holds `usage`, with the 5 % root reserve. */
export function minimumFsBytes(usage: TreeUsage): number {
  // The inode count and journal depend on the size: iterate to a fixed point (two or three rounds).
  let size = Math.max(16 * MIB, usage.blocks * EXT4_BLOCK_SIZE);
  for (let i = 0; i < 8; i++) {
    const blocks = size / EXT4_BLOCK_SIZE;
    const inodeTable = blocksOf(inodesFor(usage, size) * EXT4_INODE_SIZE);
    const needed = usage.blocks + inodeTable + journalBlocks(blocks) + groupMetadataBlocks(blocks);
    // A 2 % margin for extent blocks and directory growth during the copy, then the 5 % reserve.
    const next = Math.ceil((needed * 1.02) / 0.95 / (MIB / EXT4_BLOCK_SIZE)) * MIB;
    if (next <= size) return size;
    size = next;
  }
  return size;
}

/** `--size auto`: the minimum plus room to use the system (a quarter of the contents, at least 256 MiB). */
export function autoFsBytes(usage: TreeUsage): number {
  const headroom = Math.max(256 * MIB, Math.ceil((usage.blocks * EXT4_BLOCK_SIZE) / 4 / MIB) * MIB);
  return minimumFsBytes(usage) + headroom;
}
