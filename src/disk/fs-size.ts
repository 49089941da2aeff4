// How big the root filesystem must be, computed from the tree: ext4 blocks of every file (hardlinks
// once), directory blocks, long symlinks, inode tables, the journal mke2fs will make, group
// metadata and the 5 % reserved for root. `--size auto` adds headroom on top; an explicit size below
// the minimum is refused before anything is written.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
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
  /** Bytes of file content (for messages). */
  bytes: number;
}

const blocksOf = (bytes: number) => Math.ceil(bytes / EXT4_BLOCK_SIZE);

/** Walks the tree with lstat (no symlink is followed), several directories at a time. */
export async function measureTree(root: string): Promise<TreeUsage> {
  const seen = new Set<string>();
  const usage: TreeUsage = { inodes: 1, blocks: 0, bytes: 0 };
  const measureDir = async (dir: string): Promise<string[]> => {
    const entries = await readdir(dir, { withFileTypes: true });
    // A directory entry is 8 bytes plus the name rounded to 4; plus "." and "..".
    let dirBytes = 24;
    const subdirs: string[] = [];
    const others = entries.filter((e) => !e.isDirectory());
    const stats = await Promise.all(others.map((e) => lstat(join(dir, e.name))));
    for (const e of entries) {
      dirBytes += 8 + Math.ceil(Buffer.byteLength(e.name) / 4) * 4;
      if (e.isDirectory()) {
        usage.inodes++;
        subdirs.push(join(dir, e.name));
      }
    }
    for (const st of stats) {
      if (st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        if (seen.has(key)) continue;
        seen.add(key);
      }
      usage.inodes++;
      if (st.isFile()) {
        usage.bytes += st.size;
        // Extent tree blocks for very fragmented large files are left to the metadata margin.
        usage.blocks += blocksOf(st.size);
      } else if (st.isSymbolicLink() && st.size > FAST_SYMLINK_MAX) usage.blocks += 1;
    }
    usage.blocks += Math.max(1, blocksOf(dirBytes));
    return subdirs;
  };
  // Breadth-first with a few directories in flight: lstat latency, not CPU, is what a walk waits on.
  let pending = [root];
  while (pending.length > 0) {
    const next: string[] = [];
    for (let i = 0; i < pending.length; i += 16) {
      for (const subdirs of await Promise.all(pending.slice(i, i + 16).map(measureDir))) next.push(...subdirs);
    }
    pending = next;
  }
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
