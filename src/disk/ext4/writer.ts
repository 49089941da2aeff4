// The native ext4 writer: plan from the full entry list, then file contents in any order (each
// straight to its planned blocks with positioned writes), then the metadata. Nothing outside
// [offset, offset + size) of the image file is touched.
//
//   const w = await Ext4Writer.open(image, offset, size, entries, { uuid });
//   for (const f of w.pendingFiles()) await w.writeFile(f, stream);   // any order
//   await w.finish();
//
// A sparse file (Ext4Entry.sparse) is planned with blocks only where its map has data and is
// given its stored data alone (the segments' bytes one after the other, as the flatten stage emits
// it): each piece goes to its block, the rest of a block it shares with a hole is zeroed, and the
// holes stay unallocated (ext4 reads them as zeros).
import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { SparseCursor } from '../../layers/sparse.ts';
import { encodeName, nameByteLength, printableName } from '../../util/raw-name.ts';
import {
  BLOCK_SIZE,
  BLOCKS_PER_GROUP,
  DESC_SIZE,
  deviceIblock,
  dirBlocks,
  EXT4_EXTENTS_FL,
  extentTree,
  hasSuper,
  INODE_SIZE,
  JOURNAL_INO,
  journalSuperblock,
  LPF_INO,
  MAX_EXTENT_LEN,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  superblock,
  timeFields,
  writeGroupDesc,
  writeInode,
  type Extent,
  type GroupDesc,
} from './format.ts';
import { allocate, dirRecordsFor, geometry, groupBlocks, metaBlocks, overhead, TooSmall, Tree, type Allocation, type Ext4Entry, type Ext4Note, type Node } from './layout.ts';
import { writeIbodyXattrs, xattrBlock } from './xattr.ts';

export type { Ext4Entry, Ext4Note } from './layout.ts';
export { Ext4LimitError } from './errors.ts';

export interface Ext4Options {
  /** Filesystem UUID: 32 hex digits, dashes allowed. Random when absent. */
  uuid?: string;
  label?: string;
  /** Inodes to make (at least those used). Default: the used ones plus a quarter, at least 1024. */
  inodes?: number;
  /** Longest extent in blocks (≤ 32768); smaller values force extent leaf blocks (tests). */
  maxExtentBlocks?: number;
  /** Blocks reserved for root, in percent of the filesystem (mke2fs: 5). */
  reservedPercent?: number;
  /** Seconds since the epoch for the superblock, journal and implicit directories. Default: now. */
  time?: number;
}

export class Ext4SpaceError extends Error {
  readonly code = 'IMGX_NO_SPACE';
}

const defaultInodes = (used: number) => Math.max(1024, Math.ceil(used * 1.25));

/**
 * The smallest filesystem (bytes, a multiple of 4096) that holds `entries` with these options:
 * the planner is run on candidate sizes until everything fits.
 */
export function ext4MinimumBytes(entries: Iterable<Ext4Entry>, opts: Ext4Options = {}): number {
  const tree = new Tree(entries, 0);
  return minimumBlocks(tree, opts) * BLOCK_SIZE;
}

function minimumBlocks(tree: Tree, opts: Ext4Options): number {
  const inodes = opts.inodes ?? defaultInodes(tree.inodesUsed);
  let blocks = Math.max(64, tree.contentBlocks() + 1024);
  for (let i = 0; i < 10000; i++) {
    let a: Allocation;
    try {
      a = allocate(tree, blocks, inodes, opts.maxExtentBlocks);
    } catch (e) {
      if (!(e instanceof TooSmall)) throw e;
      blocks = Math.max(blocks + 1, e.wantBlocks);
      continue;
    }
    if (a.overflow === 0 && a.geo.blocks === blocks) return blocks;
    if (a.geo.blocks < blocks) {
      // The last group was too small to hold its metadata: make it big enough.
      const last = a.geo.groups * BLOCKS_PER_GROUP;
      const geo = geometry(last + BLOCKS_PER_GROUP, inodes);
      blocks = last + overhead(geo, a.geo.groups) + Math.max(1, a.overflow);
    } else blocks += a.overflow;
  }
  throw new Error('internal: the ext4 size search did not converge');
}

function parseUuid(uuid: string | undefined): Buffer {
  if (uuid === undefined) return randomBytes(16);
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`bad filesystem UUID: ${uuid}`);
  return Buffer.from(hex, 'hex');
}

const ZEROS = Buffer.alloc(1 << 20);

/** Positioned writes, merged while they follow each other (up to 1 MiB), into the image at `base`. */
class Output {
  private buf: Buffer | undefined;
  /** Buffers whose write has completed. */
  private readonly pool: Buffer[] = [];
  private start = 0;
  private len = 0;
  private readonly fh: FileHandle;
  private readonly base: number;
  private readonly limit: number;
  static readonly CAP = 1 << 20;

  constructor(fh: FileHandle, base: number, limit: number) {
    this.fh = fh;
    this.base = base;
    this.limit = limit;
  }

  async write(pos: number, data: Uint8Array): Promise<void> {
    if (pos < 0 || pos + data.length > this.limit) throw new Error(`internal: write outside the filesystem at ${pos}`);
    if (this.buf && pos === this.start + this.len && this.len + data.length <= Output.CAP) {
      this.buf.set(data, this.len);
      this.len += data.length;
      return;
    }
    const old = this.detach();
    if (data.length < Output.CAP) {
      this.buf = this.pool.pop() ?? Buffer.allocUnsafe(Output.CAP);
      this.buf.set(data, 0);
      this.start = pos;
      this.len = data.length;
      if (old) await this.done(old);
    } else {
      if (old) await this.done(old);
      await this.raw(pos, data);
    }
  }

  /** Writes a detached buffer, then keeps it for reuse. */
  private async done(old: { pos: number; bytes: Buffer; whole: Buffer }): Promise<void> {
    await this.raw(old.pos, old.bytes);
    this.pool.push(old.whole);
  }

  private detach(): { pos: number; bytes: Buffer; whole: Buffer } | undefined {
    if (!this.buf || this.len === 0) return undefined;
    const r = { pos: this.start, bytes: this.buf.subarray(0, this.len), whole: this.buf };
    this.buf = undefined;
    this.len = 0;
    return r;
  }

  async raw(pos: number, data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, this.base + pos + done);
      done += bytesWritten;
    }
  }

  async flush(): Promise<void> {
    const old = this.detach();
    if (old) await this.done(old);
  }

  /** Zeroes [pos, pos + len) where it is not zero already (a fresh sparse image stays sparse). */
  async zero(pos: number, len: number): Promise<void> {
    await this.flush();
    const chunk = Buffer.alloc(Math.min(len, Output.CAP));
    for (let at = pos; at < pos + len; at += chunk.length) {
      const n = Math.min(chunk.length, pos + len - at);
      const view = chunk.subarray(0, n);
      const { bytesRead } = await this.fh.read(view, 0, n, this.base + at);
      if (!view.subarray(0, bytesRead).equals(ZEROS.subarray(0, bytesRead))) {
        view.fill(0);
        await this.raw(at, view);
      }
    }
  }
}

const block = (b: number) => b * BLOCK_SIZE;

export class Ext4Writer {
  readonly tree: Tree;
  readonly alloc: Allocation;
  private readonly out: Output;
  private readonly fh: FileHandle;
  private readonly ownsHandle: boolean;
  private readonly uuid: Buffer;
  private readonly opts: Ext4Options;
  private readonly time: number;

  private constructor(fh: FileHandle, owns: boolean, offset: number, tree: Tree, alloc: Allocation, opts: Ext4Options, time: number) {
    this.fh = fh;
    this.ownsHandle = owns;
    this.tree = tree;
    this.alloc = alloc;
    this.out = new Output(fh, offset, alloc.geo.blocks * BLOCK_SIZE);
    this.uuid = parseUuid(opts.uuid);
    this.opts = opts;
    this.time = time;
  }

  /** Plans the filesystem in `size` bytes at `offset` of `image` (a path, or an open handle kept open). */
  static async open(image: string | FileHandle, offset: number, size: number, entries: Iterable<Ext4Entry>, opts: Ext4Options = {}): Promise<Ext4Writer> {
    if (offset % 512 !== 0) throw new Error('the filesystem offset must be sector aligned');
    const time = Math.floor(opts.time ?? Date.now() / 1000);
    const tree = new Tree(entries, time);
    const inodes = opts.inodes ?? defaultInodes(tree.inodesUsed);
    const maxExtent = opts.maxExtentBlocks ?? MAX_EXTENT_LEN;
    if (maxExtent < 1 || maxExtent > MAX_EXTENT_LEN) throw new Error(`bad maximum extent length ${maxExtent}`);
    let alloc: Allocation;
    try {
      alloc = allocate(tree, Math.floor(size / BLOCK_SIZE), inodes, maxExtent);
    } catch (e) {
      if (e instanceof TooSmall) throw new Ext4SpaceError(`ext4: ${size} bytes are too small: ${e.message} (at least ${minimumBlocks(tree, opts) * BLOCK_SIZE} bytes needed)`);
      throw e;
    }
    if (alloc.overflow > 0) throw new Ext4SpaceError(`ext4: ${size} bytes are too small: ${alloc.overflow} more blocks needed (at least ${minimumBlocks(tree, opts) * BLOCK_SIZE} bytes)`);
    const owns = typeof image === 'string';
    const fh = typeof image === 'string' ? await open(image, 'r+') : image;
    return new Ext4Writer(fh, owns, offset, tree, alloc, opts, time);
  }

  /** Paths of the regular files that still need content (one path per inode, the first in entry order). */
  pendingFiles(): string[] {
    return this.tree.files.filter((n) => !n.written).map((n) => n.entry.path);
  }

  /** What the plan left out (xattrs ext4 has no namespace for, symlinks without a target): for the warn channel. */
  get notes(): readonly Ext4Note[] {
    return this.tree.notes;
  }

  /**
   * The content of the file at `path` (or a hardlink to it): exactly its size in bytes; for a
   * sparse file, exactly its stored data (the sum of its segments), which goes where its map says.
   */
  async writeFile(path: string, body: Uint8Array | AsyncIterable<Uint8Array | string>): Promise<void> {
    const node = this.tree.byPath.get(path);
    if (!node || node.type !== 'file') throw new Error(`ext4: ${printableName(path)} is not a regular file of the plan`);
    if (node.written) throw new Error(`ext4: ${printableName(path)} written twice`);
    node.written = true;
    const { size, sparse } = node.entry;
    const cursor = new SparseCursor(sparse ?? (size > 0 ? [{ offset: 0, size }] : []));
    const extents = node.extents;
    // Extents are in logical order, and so are the pieces and the ranges zeroed: one index walks them.
    let ei = 0;
    /** Bytes of the file below this offset are written (data, or zeros where a block holds no data). */
    let filled = 0;
    const write = async (at: number, piece: Uint8Array) => {
      for (let done = 0; done < piece.length; ) {
        while (ei < extents.length && at >= block(extents[ei]!.logical + extents[ei]!.len)) ei++;
        const x = extents[ei];
        if (!x || at < block(x.logical)) throw new Error(`internal: ext4: ${printableName(path)}: data at ${at} has no block`);
        const n = Math.min(piece.length - done, block(x.logical + x.len) - at);
        await this.out.write(block(x.start) + at - block(x.logical), piece.subarray(done, done + n));
        done += n;
        at += n;
      }
    };
    /** Zeroes the allocated bytes in [from, to): a hole's part of the blocks it shares with data. */
    const zero = async (from: number, to: number) => {
      for (let i = ei; i < extents.length && block(extents[i]!.logical) < to; i++) {
        const x = extents[i]!;
        const a = Math.max(from, block(x.logical));
        const b = Math.min(to, block(x.logical + x.len));
        for (let at = a; at < b; at += ZEROS.length) await this.out.write(block(x.start) + at - block(x.logical), ZEROS.subarray(0, Math.min(ZEROS.length, b - at)));
      }
    };
    const put = async (chunk: Uint8Array) => {
      if (cursor.placed + chunk.length > cursor.stored) throw new Error(`ext4: ${printableName(path)}: more than its ${cursor.stored} bytes${sparse ? ' of stored data' : ''}`);
      const pieces: [Uint8Array, number][] = [];
      cursor.place(chunk, (piece, offset) => pieces.push([piece, offset]));
      for (const [piece, offset] of pieces) {
        if (offset > filled) await zero(filled, offset);
        await write(offset, piece);
        filled = offset + piece.length;
      }
    };
    if (body instanceof Uint8Array) await put(body);
    else for await (const c of body) await put(typeof c === 'string' ? Buffer.from(c) : c);
    if (cursor.placed !== cursor.stored) throw new Error(`ext4: ${printableName(path)}: ${cursor.placed} bytes for a file of ${cursor.stored}${sparse ? ' stored (sparse)' : ''}`);
    // The rest of the last block (and of any block after the last piece): zeros.
    await zero(filled, Infinity);
  }

  /** Writes every structure; the filesystem is complete and clean afterwards. */
  async finish(): Promise<void> {
    try {
      // A sparse file that is all hole has no content to give.
      const missing = this.tree.files.find((n) => !n.written && n.dataBlocks > 0);
      if (missing) throw new Error(`ext4: no content was given for ${printableName(missing.entry.path)}`);
      for (const n of this.tree.files) n.written = true;
      await this.writeMetadata();
      await this.out.flush();
    } finally {
      if (this.ownsHandle) await this.fh.close();
    }
  }

  /** Closes without finishing (after a failure). */
  async abort(): Promise<void> {
    if (this.ownsHandle) await this.fh.close().catch(() => {});
  }

  private inodeOf(n: Node): Buffer {
    const buf = Buffer.alloc(INODE_SIZE);
    const e = n.entry;
    const perm = e.mode & 0o7777;
    let mode = 0;
    let size = 0;
    let flags = 0;
    let iblock: Buffer = Buffer.alloc(60);
    // Only allocated blocks count: a sparse file's holes have none.
    let blocks = n.extents.reduce((s, x) => s + x.len, 0) + n.treeBlocks.length;
    switch (n.type) {
      case 'file':
        mode = S_IFREG;
        size = e.size;
        break;
      case 'directory':
        mode = S_IFDIR;
        size = n.dataBlocks * BLOCK_SIZE;
        break;
      case 'symlink':
        mode = S_IFLNK;
        size = nameByteLength(e.linkname!);
        if (n.dataBlocks === 0) encodeName(e.linkname!).copy(iblock);
        break;
      case 'char-device':
      case 'block-device':
        mode = n.type === 'char-device' ? S_IFCHR : S_IFBLK;
        iblock = deviceIblock(e.devmajor ?? 0, e.devminor ?? 0);
        break;
      case 'fifo':
        mode = S_IFIFO;
        break;
    }
    if (n.type === 'file' || n.type === 'directory' || (n.type === 'symlink' && n.dataBlocks > 0)) {
      flags = EXT4_EXTENTS_FL;
      iblock = extentTree(n.extents, n.treeBlocks).iblock;
    }
    if (n.xattrBlock) blocks++;
    let links = n.links;
    if (n.type === 'directory') links = 2 + n.subdirs >= 65000 ? 1 : 2 + n.subdirs;
    writeInode(buf, 0, { mode: mode | perm, uid: e.uid, gid: e.gid, size, time: timeFields(e.mtime, e.nsec), links, sectors: blocks * (BLOCK_SIZE / 512), flags, iblock, fileAcl: n.xattrBlock });
    writeIbodyXattrs(buf, n.inline);
    return buf;
  }

  private async writeMetadata(): Promise<void> {
    const { geo, journal, journalTree, usedData } = this.alloc;
    const out = this.out;
    const ipg = geo.inodesPerGroup;

    // Contents the writer makes itself: directories, long symlinks, extent tree blocks, xattr blocks.
    for (const n of this.tree.withBlocks()) {
      if (n.type === 'directory') {
        const blocks = dirBlocks(dirRecordsFor(n), n.dataBlocks);
        if (blocks.length !== n.dataBlocks) throw new Error(`internal: directory ${n.entry.path} has ${blocks.length} blocks, planned ${n.dataBlocks}`);
        await writeRuns(out, n.extents, blocks);
      } else if (n.type === 'symlink') {
        const b = Buffer.alloc(BLOCK_SIZE);
        encodeName(n.entry.linkname!).copy(b);
        await writeRuns(out, n.extents, [b]);
      }
      if (n.treeBlocks.length > 0) {
        const { treeBlocks } = extentTree(n.extents, n.treeBlocks);
        for (const [i, b] of n.treeBlocks.entries()) await out.write(block(b), treeBlocks[i]!);
      }
    }
    for (const n of this.tree.nodes) if (n?.xattrBlock) await out.write(block(n.xattrBlock), xattrBlock(n.blockXattrs, BLOCK_SIZE));

    // The journal: a clean jbd2 superblock, the rest zero.
    const jblocks = journal.reduce((s, x) => s + x.len, 0);
    const jtree = extentTree(journal, journalTree);
    for (const [i, b] of journalTree.entries()) await out.write(block(b), jtree.treeBlocks[i]!);
    await out.write(block(journal[0]!.start), journalSuperblock(jblocks, this.uuid));
    for (const [i, x] of journal.entries()) await out.zero(block(x.start + (i === 0 ? 1 : 0)), block(x.len - (i === 0 ? 1 : 0)));
    const jinode = Buffer.alloc(INODE_SIZE);
    writeInode(jinode, 0, { mode: S_IFREG | 0o600, uid: 0, gid: 0, size: block(jblocks), time: [this.time >>> 0, 0], links: 1, sectors: (jblocks + journalTree.length) * 8, flags: EXT4_EXTENTS_FL, iblock: jtree.iblock, fileAcl: 0 });

    // Inode tables, bitmaps, descriptors.
    const used = this.tree.inodesUsed;
    const descs: GroupDesc[] = [];
    let freeBlocks = 0;
    let freeInodes = 0;
    for (let g = 0; g < geo.groups; g++) {
      const meta = metaBlocks(geo, g);
      const first = g * ipg + 1;
      const usedHere = Math.max(0, Math.min(ipg, used - g * ipg));
      let dirs = 0;
      if (usedHere > 0) {
        const table = Buffer.alloc(geo.inodeTableBlocks * BLOCK_SIZE);
        for (let ino = first; ino < first + usedHere; ino++) {
          const at = (ino - first) * INODE_SIZE;
          if (ino === JOURNAL_INO) jinode.copy(table, at);
          const n = this.tree.nodes[ino];
          if (!n) continue;
          this.inodeOf(n).copy(table, at);
          if (n.type === 'directory') dirs++;
        }
        await out.write(block(meta.inodeTable), table);
      } else await out.zero(block(meta.inodeTable), block(geo.inodeTableBlocks));

      const size = groupBlocks(geo, g);
      const usedBlocks = overhead(geo, g) + usedData[g]!;
      const bb = Buffer.alloc(BLOCK_SIZE);
      setBits(bb, 0, usedBlocks);
      setBits(bb, size, BLOCKS_PER_GROUP);
      await out.write(block(meta.blockBitmap), bb);
      const ib = Buffer.alloc(BLOCK_SIZE);
      setBits(ib, 0, usedHere);
      setBits(ib, ipg, 8 * BLOCK_SIZE);
      await out.write(block(meta.inodeBitmap), ib);

      descs.push({ ...meta, freeBlocks: size - usedBlocks, freeInodes: ipg - usedHere, usedDirs: dirs });
      freeBlocks += size - usedBlocks;
      freeInodes += ipg - usedHere;
    }
    const gdt = Buffer.alloc(geo.gdtBlocks * BLOCK_SIZE);
    descs.forEach((d, g) => writeGroupDesc(gdt, g * DESC_SIZE, d));

    const reserved = Math.floor((geo.blocks * (this.opts.reservedPercent ?? 5)) / 100);
    const hashSeed = randomBytes(16);
    for (let g = 0; g < geo.groups; g++) {
      if (!hasSuper(g)) continue;
      const sb = superblock({
        inodes: geo.groups * ipg,
        blocks: geo.blocks,
        reservedBlocks: reserved,
        freeBlocks,
        freeInodes,
        inodesPerGroup: ipg,
        time: this.time,
        uuid: this.uuid,
        label: this.opts.label ?? '',
        hashSeed,
        journalBlocks: jtree.iblock,
        journalSize: block(jblocks),
        groupNr: g,
      });
      const start = block(g * BLOCKS_PER_GROUP);
      if (g === 0) {
        // Block 0: boot sectors zeroed, the superblock at 1024, the rest of the block zero.
        const b0 = Buffer.alloc(BLOCK_SIZE);
        sb.copy(b0, 1024);
        await out.write(0, b0);
      } else {
        const b = Buffer.alloc(BLOCK_SIZE);
        sb.copy(b, 0);
        await out.write(start, b);
      }
      await out.write(start + BLOCK_SIZE, gdt);
    }
  }
}

function setBits(buf: Buffer, from: number, to: number): void {
  for (let i = from; i < to; ) {
    if (i % 8 === 0 && i + 8 <= to) {
      buf[i >> 3] = 0xff;
      i += 8;
    } else {
      buf[i >> 3]! |= 1 << (i & 7);
      i++;
    }
  }
}

/** Writes `blocks` in order over the runs of `extents`. */
async function writeRuns(out: Output, extents: Extent[], blocks: Buffer[]): Promise<void> {
  let i = 0;
  for (const x of extents) for (let k = 0; k < x.len; k++) await out.write(block(x.start + k), blocks[i++]!);
}
