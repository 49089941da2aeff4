// On-disk structures of ext4 as this writer makes them: the superblock, 32-byte group descriptors
// (no 64bit), 256-byte inodes with nanosecond times, extent trees, linear directories, the jbd2
// superblock. Little-endian except jbd2 (big-endian).

export const BLOCK_SIZE = 4096;
export const INODE_SIZE = 256;
export const EXTRA_ISIZE = 32;
export const BLOCKS_PER_GROUP = 32768;
export const DESC_SIZE = 32;
export const FIRST_INO = 11;
export const ROOT_INO = 2;
export const JOURNAL_INO = 8;
export const LPF_INO = 11;
/** The longest initialized extent. */
export const MAX_EXTENT_LEN = 32768;
/** Entries in one extent tree block (extents in a leaf, or index entries): (4096 - 12) / 12. */
export const EXTENTS_PER_BLOCK = Math.floor((BLOCK_SIZE - 12) / 12);

export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFDIR = 0o040000;
export const S_IFBLK = 0o060000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

export const EXT4_EXTENTS_FL = 0x80000;

export const FT = { file: 1, directory: 2, 'char-device': 3, 'block-device': 4, fifo: 5, symlink: 7 } as const;

// Features: compat has_journal | ext_attr; incompat filetype | extent; ro_compat sparse_super |
// large_file | huge_file | dir_nlink | extra_isize.
export const COMPAT = 0x0004 | 0x0008;
export const INCOMPAT = 0x0002 | 0x0040;
export const RO_COMPAT = 0x0001 | 0x0002 | 0x0008 | 0x0020 | 0x0040;

/** sparse_super: groups 0, 1 and powers of 3, 5, 7 carry a superblock and descriptor copy. */
export function hasSuper(g: number): boolean {
  if (g <= 1) return true;
  for (const base of [3, 5, 7]) {
    let p = base;
    while (p < g) p *= base;
    if (p === g) return true;
  }
  return false;
}

export interface SuperblockFields {
  inodes: number;
  blocks: number;
  reservedBlocks: number;
  freeBlocks: number;
  freeInodes: number;
  inodesPerGroup: number;
  time: number;
  uuid: Buffer;
  label: string;
  hashSeed: Buffer;
  /** i_block of the journal inode (60 bytes) and its size. */
  journalBlocks: Buffer;
  journalSize: number;
  groupNr: number;
}

export function superblock(f: SuperblockFields): Buffer {
  const b = Buffer.alloc(1024);
  b.writeUInt32LE(f.inodes, 0x00);
  b.writeUInt32LE(f.blocks, 0x04);
  b.writeUInt32LE(f.reservedBlocks, 0x08);
  b.writeUInt32LE(f.freeBlocks, 0x0c);
  b.writeUInt32LE(f.freeInodes, 0x10);
  b.writeUInt32LE(0, 0x14); // s_first_data_block
  b.writeUInt32LE(2, 0x18); // log block size: 1024 << 2
  b.writeUInt32LE(2, 0x1c);
  b.writeUInt32LE(BLOCKS_PER_GROUP, 0x20);
  b.writeUInt32LE(BLOCKS_PER_GROUP, 0x24);
  b.writeUInt32LE(f.inodesPerGroup, 0x28);
  b.writeUInt32LE(0, 0x2c); // s_mtime
  b.writeUInt32LE(f.time, 0x30); // s_wtime
  b.writeUInt16LE(0, 0x34); // s_mnt_count
  b.writeUInt16LE(0xffff, 0x36); // s_max_mnt_count: -1
  b.writeUInt16LE(0xef53, 0x38);
  b.writeUInt16LE(1, 0x3a); // clean
  b.writeUInt16LE(1, 0x3c); // errors: continue
  b.writeUInt32LE(f.time, 0x40); // s_lastcheck
  b.writeUInt32LE(0, 0x48); // Linux
  b.writeUInt32LE(1, 0x4c); // dynamic rev
  b.writeUInt32LE(FIRST_INO, 0x54);
  b.writeUInt16LE(INODE_SIZE, 0x58);
  b.writeUInt16LE(f.groupNr, 0x5a);
  b.writeUInt32LE(COMPAT, 0x5c);
  b.writeUInt32LE(INCOMPAT, 0x60);
  b.writeUInt32LE(RO_COMPAT, 0x64);
  f.uuid.copy(b, 0x68, 0, 16);
  const label = Buffer.from(f.label, 'utf8');
  if (label.length > 16) throw new Error(`filesystem label too long: ${f.label}`);
  label.copy(b, 0x78);
  b.writeUInt32LE(JOURNAL_INO, 0xe0);
  f.hashSeed.copy(b, 0xec, 0, 16);
  b.writeUInt8(1, 0xfc); // s_def_hash_version: half_md4
  b.writeUInt8(1, 0xfd); // s_jnl_backup_type: EXT3_JNL_BACKUP_BLOCKS
  b.writeUInt32LE(0x000c, 0x100); // default mount options: user_xattr, acl
  b.writeUInt32LE(f.time, 0x108); // s_mkfs_time
  f.journalBlocks.copy(b, 0x10c, 0, 60);
  b.writeUInt32LE(Math.floor(f.journalSize / 2 ** 32), 0x10c + 60);
  b.writeUInt32LE(f.journalSize % 2 ** 32, 0x10c + 64);
  b.writeUInt16LE(EXTRA_ISIZE, 0x15c);
  b.writeUInt16LE(EXTRA_ISIZE, 0x15e);
  b.writeUInt32LE(0x0001, 0x160); // signed directory hash (x86)
  return b;
}

export interface GroupDesc {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  freeBlocks: number;
  freeInodes: number;
  usedDirs: number;
}

export function writeGroupDesc(buf: Buffer, off: number, d: GroupDesc): void {
  buf.writeUInt32LE(d.blockBitmap, off);
  buf.writeUInt32LE(d.inodeBitmap, off + 4);
  buf.writeUInt32LE(d.inodeTable, off + 8);
  buf.writeUInt16LE(d.freeBlocks, off + 12);
  buf.writeUInt16LE(d.freeInodes, off + 14);
  buf.writeUInt16LE(d.usedDirs, off + 16);
}

/** A run of blocks: logical block `logical` of the file is physical `start`, for `len` blocks. */
export interface Extent {
  logical: number;
  start: number;
  len: number;
}

function extentHeader(buf: Buffer, off: number, entries: number, max: number, depth: number): void {
  buf.writeUInt16LE(0xf30a, off);
  buf.writeUInt16LE(entries, off + 2);
  buf.writeUInt16LE(max, off + 4);
  buf.writeUInt16LE(depth, off + 6);
  buf.writeUInt32LE(0, off + 8);
}

function extentEntry(buf: Buffer, off: number, e: Extent): void {
  buf.writeUInt32LE(e.logical, off);
  buf.writeUInt16LE(e.len, off + 4);
  buf.writeUInt16LE(Math.floor(e.start / 2 ** 32), off + 6);
  buf.writeUInt32LE(e.start % 2 ** 32, off + 8);
}

/** A node of an extent tree as its parent points to it: its first logical block and where it is. */
interface TreeNode {
  logical: number;
  block: number;
}

/**
 * i_block (60 bytes) of an extent-mapped inode, and the blocks of its tree when the extents do not
 * fit in the inode: leaves of up to 340 extents first, then index levels (each entry naming a
 * block of the level below), until the inode's four slots hold the top level. `blocks` are the
 * tree's block numbers, as many as treeBlocksFor(extents.length), used in that order.
 */
export function extentTree(extents: Extent[], blocks: number[]): { iblock: Buffer; treeBlocks: Buffer[] } {
  const iblock = Buffer.alloc(60);
  if (blocks.length !== treeBlocksFor(extents.length)) throw new Error(`internal: ${extents.length} extents need ${treeBlocksFor(extents.length)} tree blocks, got ${blocks.length}`);
  if (blocks.length === 0) {
    extentHeader(iblock, 0, extents.length, 4, 0);
    extents.forEach((e, i) => extentEntry(iblock, 12 + 12 * i, e));
    return { iblock, treeBlocks: [] };
  }
  const treeBlocks: Buffer[] = [];
  let next = 0;
  let level: TreeNode[] = [];
  for (let i = 0; i < extents.length; i += EXTENTS_PER_BLOCK) {
    const b = Buffer.alloc(BLOCK_SIZE);
    const part = extents.slice(i, i + EXTENTS_PER_BLOCK);
    extentHeader(b, 0, part.length, EXTENTS_PER_BLOCK, 0);
    part.forEach((e, j) => extentEntry(b, 12 + 12 * j, e));
    treeBlocks.push(b);
    level.push({ logical: part[0]!.logical, block: blocks[next++]! });
  }
  let depth = 0;
  while (level.length > 4) {
    depth++;
    const up: TreeNode[] = [];
    for (let i = 0; i < level.length; i += EXTENTS_PER_BLOCK) {
      const b = Buffer.alloc(BLOCK_SIZE);
      const part = level.slice(i, i + EXTENTS_PER_BLOCK);
      extentHeader(b, 0, part.length, EXTENTS_PER_BLOCK, depth);
      part.forEach((x, j) => indexEntry(b, 12 + 12 * j, x));
      treeBlocks.push(b);
      up.push({ logical: part[0]!.logical, block: blocks[next++]! });
    }
    level = up;
  }
  if (depth + 1 > 5) throw new Error('internal: an extent tree deeper than ext4 allows');
  extentHeader(iblock, 0, level.length, 4, depth + 1);
  level.forEach((x, i) => indexEntry(iblock, 12 + 12 * i, x));
  return { iblock, treeBlocks };
}

function indexEntry(buf: Buffer, off: number, x: TreeNode): void {
  buf.writeUInt32LE(x.logical, off);
  buf.writeUInt32LE(x.block % 2 ** 32, off + 4);
  buf.writeUInt16LE(Math.floor(x.block / 2 ** 32), off + 8);
}

/** Blocks of the extent tree (leaves and index nodes) for `n` extents: 0 when they fit in the inode. */
export function treeBlocksFor(n: number): number {
  if (n <= 4) return 0;
  let total = 0;
  let level = n;
  do {
    level = Math.ceil(level / EXTENTS_PER_BLOCK);
    total += level;
  } while (level > 4);
  return total;
}

/** The seconds ext4 can keep with extra_isize: a signed 32-bit value plus two epoch bits (1901-12-13 … 2446-05-10). */
export const MIN_TIME = -(2 ** 31);
export const MAX_TIME = 2 ** 34 - 2 ** 31 - 1;

/**
 * Seconds (possibly fractional, possibly negative) → [low 32 bits, extra field: nsec << 2 | epoch].
 * Times ext4 cannot hold are clamped to its first or last second (not a number: the epoch).
 */
export function timeFields(mtime: number, nsec?: number): [number, number] {
  let sec = Number.isFinite(mtime) ? Math.floor(mtime) : 0;
  let ns = nsec ?? (Number.isFinite(mtime) ? Math.round((mtime - sec) * 1e9) : 0);
  if (!(ns <= 999_999_999)) ns = ns > 0 ? 999_999_999 : 0;
  if (ns < 0) ns = 0;
  if (sec < MIN_TIME) {
    sec = MIN_TIME;
    ns = 0;
  } else if (sec > MAX_TIME) {
    sec = MAX_TIME;
    ns = 999_999_999;
  }
  ns = Math.floor(ns);
  const lo = sec | 0; // as a signed 32-bit value
  const epoch = (sec - lo) / 2 ** 32; // 0 … 3
  return [lo >>> 0, ((ns << 2) | epoch) >>> 0];
}

export interface InodeFields {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  time: [number, number];
  links: number;
  /** In 512-byte sectors. */
  sectors: number;
  flags: number;
  iblock: Buffer;
  fileAcl: number;
}

export function writeInode(buf: Buffer, off: number, f: InodeFields): void {
  buf.writeUInt16LE(f.mode, off);
  buf.writeUInt16LE(f.uid & 0xffff, off + 0x02);
  buf.writeUInt32LE(f.size % 2 ** 32, off + 0x04);
  const [t, extra] = f.time;
  buf.writeUInt32LE(t, off + 0x08); // atime
  buf.writeUInt32LE(t, off + 0x0c); // ctime
  buf.writeUInt32LE(t, off + 0x10); // mtime
  buf.writeUInt16LE(f.gid & 0xffff, off + 0x18);
  buf.writeUInt16LE(f.links, off + 0x1a);
  buf.writeUInt32LE(f.sectors % 2 ** 32, off + 0x1c);
  buf.writeUInt32LE(f.flags, off + 0x20);
  f.iblock.copy(buf, off + 0x28, 0, 60);
  buf.writeUInt32LE(f.fileAcl % 2 ** 32, off + 0x68);
  buf.writeUInt32LE(Math.floor(f.size / 2 ** 32), off + 0x6c);
  buf.writeUInt16LE(Math.floor(f.sectors / 2 ** 32), off + 0x74);
  buf.writeUInt16LE(Math.floor(f.fileAcl / 2 ** 32), off + 0x76);
  buf.writeUInt16LE(f.uid >>> 16, off + 0x78);
  buf.writeUInt16LE(f.gid >>> 16, off + 0x7a);
  buf.writeUInt16LE(EXTRA_ISIZE, off + 0x80);
  buf.writeUInt32LE(extra, off + 0x84); // ctime_extra
  buf.writeUInt32LE(extra, off + 0x88); // mtime_extra
  buf.writeUInt32LE(extra, off + 0x8c); // atime_extra
  buf.writeUInt32LE(t, off + 0x90); // crtime
  buf.writeUInt32LE(extra, off + 0x94);
}

/**
 * i_block of a device inode: the old encoding when both numbers fit a byte, else the new one (as
 * Linux). Numbers are taken as mknod(2) takes them from containerd (Go's uint32, then the kernel's
 * 32-bit dev_t: a 12-bit major and a 20-bit minor), so any number a layer gives is stored.
 */
export function deviceIblock(anyMajor: number, anyMinor: number): Buffer {
  const u32 = (n: number) => (Number.isFinite(n) ? Math.trunc(n) % 2 ** 32 : 0) >>> 0;
  const major = u32(anyMajor) & 0xfff;
  const minor = u32(anyMinor) & 0xfffff;
  const b = Buffer.alloc(60);
  if (major < 256 && minor < 256) b.writeUInt32LE((major << 8) | minor, 0);
  else b.writeUInt32LE(((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0, 4);
  return b;
}

export interface DirRecord {
  name: Buffer;
  ino: number;
  type: number;
}

export const recLen = (nameLen: number) => (8 + nameLen + 3) & ~3;

/** Block index of each record in a linear directory (records never cross a block). */
export function dirBlockCount(records: { name: Buffer }[]): number {
  let blocks = 1;
  let used = 0;
  for (const r of records) {
    const len = recLen(r.name.length);
    if (used + len > BLOCK_SIZE) {
      blocks++;
      used = 0;
    }
    used += len;
  }
  return blocks;
}

/** The directory's blocks, `.` and `..` first (they are in `records`); the last record of a block reaches its end. */
export function dirBlocks(records: DirRecord[], minBlocks = 1): Buffer[] {
  const blocks: Buffer[] = [];
  let cur = Buffer.alloc(BLOCK_SIZE);
  let used = 0;
  let last = -1;
  const close = () => {
    if (last >= 0) cur.writeUInt16LE(BLOCK_SIZE - last, last + 4);
    else cur.writeUInt16LE(BLOCK_SIZE, 4); // an empty block: one unused record
    blocks.push(cur);
  };
  for (const r of records) {
    const len = recLen(r.name.length);
    if (used + len > BLOCK_SIZE) {
      close();
      cur = Buffer.alloc(BLOCK_SIZE);
      used = 0;
      last = -1;
    }
    cur.writeUInt32LE(r.ino, used);
    cur.writeUInt16LE(len, used + 4);
    cur.writeUInt8(r.name.length, used + 6);
    cur.writeUInt8(r.type, used + 7);
    r.name.copy(cur, used + 8);
    last = used;
    used += len;
  }
  close();
  while (blocks.length < minBlocks) {
    const b = Buffer.alloc(BLOCK_SIZE);
    b.writeUInt16LE(BLOCK_SIZE, 4);
    blocks.push(b);
  }
  return blocks;
}

/** The jbd2 superblock (v2) of a clean, empty internal journal of `blocks` blocks. */
export function journalSuperblock(blocks: number, uuid: Buffer): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  b.writeUInt32BE(0xc03b3998, 0x0);
  b.writeUInt32BE(4, 0x4); // JBD2_SUPERBLOCK_V2
  b.writeUInt32BE(0, 0x8);
  b.writeUInt32BE(BLOCK_SIZE, 0xc);
  b.writeUInt32BE(blocks, 0x10); // s_maxlen
  b.writeUInt32BE(1, 0x14); // s_first
  b.writeUInt32BE(1, 0x18); // s_sequence
  b.writeUInt32BE(0, 0x1c); // s_start: clean
  uuid.copy(b, 0x30, 0, 16);
  b.writeUInt32BE(1, 0x40); // s_nr_users
  return b;
}
