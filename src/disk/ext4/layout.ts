// Planning an ext4 filesystem from the full list of entries: inode numbers, directory records,
// xattr placement, and every block's place, before any content arrives. Allocation is linear (one
// cursor through the groups' data areas, nothing is ever freed), so the used blocks and inodes of
// each group follow from the cursor alone and no bitmap is held in memory. A sparse file gets
// blocks only where its map has data (data-blocks.ts); its holes are gaps between its extents.
// Names, symlink targets and xattr names are written with their bytes (raw-name.ts).
import type { FsEntry } from '../../layers/fs-entry.ts';
import { encodeName, nameByteLength, printableName } from '../../util/raw-name.ts';
import { journalBlocks } from '../fs-size.ts';
import { dataRuns, MAX_FILE_BYTES, runBlocks, type BlockRun } from './data-blocks.ts';
import { Ext4LimitError } from './errors.ts';
import {
  BLOCK_SIZE,
  BLOCKS_PER_GROUP,
  DESC_SIZE,
  dirBlockCount,
  FT,
  hasSuper,
  INODE_SIZE,
  LPF_INO,
  MAX_EXTENT_LEN,
  ROOT_INO,
  treeBlocksFor,
  type DirRecord,
  type Extent,
} from './format.ts';
import { splitXattrs, xattrEntries, type XattrEntry } from './xattr.ts';

/**
 * An entry as the writer takes it: an FsEntry, optionally with exact nanoseconds for mtime. A
 * regular file with `sparse` (FsEntry's map: segments in order, within `size`) gets blocks only for
 * its data; its content is then given as the stored data alone (Ext4Writer.writeFile).
 */
export interface Ext4Entry extends FsEntry {
  /** Nanoseconds of mtime (overrides the fraction of `mtime`, which a double cannot hold exactly). */
  nsec?: number;
}

/** Something of an entry the filesystem leaves out, for the warn channel. */
export interface Ext4Note {
  code: 'IMGX_NO_XATTR' | 'IMGX_WARNING';
  message: string;
}

export type NodeType = Exclude<FsEntry['type'], 'hardlink'>;

export interface Node {
  ino: number;
  type: NodeType;
  entry: Ext4Entry;
  links: number;
  /** Directories: their records, without `.` and `..`; and the parent's inode. */
  records?: DirRecord[];
  parent?: number;
  subdirs: number;
  /** Blocks of content (file data, directory blocks, a long symlink's block). */
  dataBlocks: number;
  /** Regular files: the logical blocks that hold data (all of them unless the file is sparse). */
  runs?: BlockRun[];
  minBlocks: number;
  extents: Extent[];
  /** The extent tree's blocks (leaves, then index levels) when the extents do not fit in the inode. */
  treeBlocks: number[];
  inline: XattrEntry[];
  blockXattrs: XattrEntry[];
  xattrBlock: number;
  written: boolean;
}

export interface Geometry {
  blocks: number;
  groups: number;
  gdtBlocks: number;
  inodesPerGroup: number;
  inodeTableBlocks: number;
}

export function groupBlocks(geo: Geometry, g: number): number {
  return Math.min(BLOCKS_PER_GROUP, geo.blocks - g * BLOCKS_PER_GROUP);
}

/** Blocks at the start of group g before its data: superblock + descriptors (if any), two bitmaps, inode table. */
export function overhead(geo: Geometry, g: number): number {
  return (hasSuper(g) ? 1 + geo.gdtBlocks : 0) + 2 + geo.inodeTableBlocks;
}

export function metaBlocks(geo: Geometry, g: number): { blockBitmap: number; inodeBitmap: number; inodeTable: number } {
  const start = g * BLOCKS_PER_GROUP + (hasSuper(g) ? 1 + geo.gdtBlocks : 0);
  return { blockBitmap: start, inodeBitmap: start + 1, inodeTable: start + 2 };
}

export class TooSmall extends Error {
  /** Blocks the filesystem should at least have. */
  readonly wantBlocks: number;
  constructor(message: string, wantBlocks: number) {
    super(message);
    this.wantBlocks = wantBlocks;
  }
}

/** Groups, descriptors and inode table size for `blocks` 4 KiB blocks and at least `inodes` inodes. */
export function geometry(requestedBlocks: number, inodes: number): Geometry {
  let blocks = requestedBlocks;
  if (blocks >= 2 ** 32) throw new Ext4LimitError('filesystems of 16 TiB and more need the 64bit feature, which this writer does not make');
  for (;;) {
    const groups = Math.ceil(blocks / BLOCKS_PER_GROUP);
    let ipg = Math.ceil(Math.ceil(inodes / groups) / 16) * 16;
    ipg = Math.max(16, ipg);
    if (ipg > 8 * BLOCK_SIZE) throw new TooSmall(`${inodes} inodes need more than ${groups} block groups`, Math.ceil(inodes / (8 * BLOCK_SIZE)) * BLOCKS_PER_GROUP);
    const geo: Geometry = { blocks, groups, gdtBlocks: Math.ceil((groups * DESC_SIZE) / BLOCK_SIZE), inodesPerGroup: ipg, inodeTableBlocks: (ipg * INODE_SIZE) / BLOCK_SIZE };
    const last = groupBlocks(geo, groups - 1);
    // The last group must hold its own metadata and a block of data; otherwise leave it out.
    if (last < overhead(geo, groups - 1) + 1) {
      if (groups === 1) throw new TooSmall(`${blocks} blocks cannot hold the filesystem's metadata`, overhead(geo, 0) + 1);
      blocks = (groups - 1) * BLOCKS_PER_GROUP;
      continue;
    }
    return geo;
  }
}

const dirname = (p: string) => {
  const i = p.lastIndexOf('/');
  return i < 0 ? '.' : p.slice(0, i);
};
const basename = (p: string) => p.slice(p.lastIndexOf('/') + 1);

function dirEntry(path: string, time: number): Ext4Entry {
  return { path, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: time, size: 0, xattrs: new Map() };
}

/** The namespace: nodes by inode number and by path, with directory records; independent of the size. */
export class Tree {
  readonly nodes: Node[] = [];
  readonly byPath = new Map<string, Node>();
  /** Regular files in entry order (content allocation order). */
  readonly files: Node[] = [];
  /** What was left out (xattrs ext4 has no namespace for, symlinks without a target). */
  readonly notes: Ext4Note[] = [];
  private nextIno = LPF_INO + 1;

  constructor(entries: Iterable<Ext4Entry>, time: number) {
    const pending = new Map<string, Ext4Entry>();
    /** Entries left out: their hardlinks go too. */
    const left = new Set<string>();
    const links: Ext4Entry[] = [];
    const order: Ext4Entry[] = [];
    for (const e of entries) {
      if (e.path === '' || e.path.startsWith('/') || e.path.endsWith('/') || e.path.split('/').some((p) => p === '' || p === '..' || (p === '.' && e.path !== '.'))) {
        throw new Error(`bad entry path: ${JSON.stringify(printableName(e.path))}`);
      }
      if (pending.has(e.path)) throw new Error(`duplicate entry: ${printableName(e.path)}`);
      // Linux has no symlink without a target (symlink(2) refuses ""): left out, as extract does.
      if (e.type === 'symlink' && !e.linkname) {
        this.notes.push({ code: 'IMGX_WARNING', message: `symlink /${printableName(e.path)} has an empty target; skipped` });
        left.add(e.path);
        continue;
      }
      pending.set(e.path, e);
      if (e.type === 'hardlink') links.push(e);
      else order.push(e);
    }
    const rootEntry = pending.get('.');
    if (rootEntry && rootEntry.type !== 'directory') throw new Error('the root entry is not a directory');
    this.add(ROOT_INO, rootEntry ?? dirEntry('.', time), ROOT_INO);
    const lpf = pending.get('lost+found');
    if (lpf && lpf.type !== 'directory') throw new Ext4LimitError(`/lost+found is a ${lpf.type} in the image: ext4 keeps that name for its lost+found directory`);
    this.add(LPF_INO, lpf ?? { ...dirEntry('lost+found', time), mode: 0o700 }, ROOT_INO).minBlocks = 4;
    this.byPath.get('.')!.records!.push({ name: Buffer.from('lost+found'), ino: LPF_INO, type: FT.directory });

    const ensureDir = (path: string): Node => {
      const have = this.byPath.get(path);
      if (have) {
        if (have.type !== 'directory') throw new Error(`${path} is not a directory but has entries under it`);
        return have;
      }
      const e = pending.get(path);
      if (e && e.type !== 'directory') throw new Error(`${path} is not a directory but has entries under it`);
      return this.place(e ?? dirEntry(path, time), ensureDir);
    };
    for (const e of order) if (!this.byPath.has(e.path)) this.place(e, ensureDir);
    for (const e of links) {
      let name = e.linkname ?? '';
      let target = pending.get(name);
      for (let hops = 0; target?.type === 'hardlink' && hops < 64; hops++) target = pending.get((name = target.linkname ?? ''));
      const node = target && this.byPath.get(target.path);
      if (!node) {
        // Another name of a symlink left out above.
        if (target === undefined && left.has(name)) continue;
        throw new Error(`hardlink ${printableName(e.path)} → ${printableName(e.linkname ?? '')}: no such entry`);
      }
      if (node.type === 'directory') throw new Error(`hardlink ${printableName(e.path)} → ${printableName(e.linkname ?? '')}: a directory`);
      const parent = ensureDir(dirname(e.path));
      node.links++;
      if (node.links > 65000) throw new Ext4LimitError(`more than 65,000 hardlinks to /${printableName(node.entry.path)}`);
      parent.records!.push({ name: nameOf(e.path), ino: node.ino, type: FT[node.type] });
      this.byPath.set(e.path, node);
    }
  }

  private place(e: Ext4Entry, ensureDir: (p: string) => Node): Node {
    const parent = ensureDir(dirname(e.path));
    const node = this.add(this.nextIno++, e, parent.ino);
    parent.records!.push({ name: nameOf(e.path), ino: node.ino, type: FT[node.type] });
    return node;
  }

  private add(ino: number, e: Ext4Entry, parentIno: number): Node {
    if (e.type === 'hardlink') throw new Error('internal: hardlink as an inode');
    const where = `/${e.path === '.' ? '' : printableName(e.path)}`;
    const skipped: string[] = [];
    let inline: XattrEntry[];
    let block: XattrEntry[];
    try {
      ({ inline, block } = splitXattrs(xattrEntries(e.xattrs, skipped), BLOCK_SIZE));
    } catch (err) {
      if (err instanceof Ext4LimitError) throw new Ext4LimitError(`${where}: ${err.message.replace(/^ext4: /, '')}`);
      throw err;
    }
    for (const name of skipped) this.notes.push({ code: 'IMGX_NO_XATTR', message: `extended attribute ${printableName(name)} of ${where} left out: ext4 has no namespace for it` });
    const node: Node = { ino, type: e.type, entry: e, links: 1, subdirs: 0, dataBlocks: 0, minBlocks: 0, extents: [], treeBlocks: [], inline, blockXattrs: block, xattrBlock: 0, written: false };
    if (e.type === 'directory') {
      node.records = [];
      node.parent = parentIno;
      node.links = 2;
      if (ino !== ROOT_INO) this.nodes[parentIno]!.subdirs++;
    } else if (e.type === 'file') {
      if (!Number.isSafeInteger(e.size) || e.size < 0) throw new Error(`bad size for ${where}`);
      if (e.size > MAX_FILE_BYTES) throw new Ext4LimitError(`${where} is ${e.size} bytes long: ext4 files end at 16 TiB`);
      node.runs = dataRuns(e.size, e.sparse);
      node.dataBlocks = runBlocks(node.runs);
      this.files.push(node);
    } else if (e.type === 'symlink') {
      const len = nameByteLength(e.linkname ?? '');
      if (len === 0) throw new Error(`internal: symlink ${where} without a target`);
      if (len >= BLOCK_SIZE) throw new Ext4LimitError(`symlink ${where}: a target of ${len} bytes (at most ${BLOCK_SIZE - 1})`);
      if (len >= 60) node.dataBlocks = 1;
    }
    this.nodes[ino] = node;
    this.byPath.set(e.path, node);
    return node;
  }

  get inodesUsed(): number {
    return this.nextIno - 1;
  }

  /** Every inode with blocks to place, in allocation order: directories, long symlinks, then files. */
  *withBlocks(): Generator<Node> {
    for (const n of this.nodes) if (n && n.type === 'directory') yield n;
    for (const n of this.nodes) if (n && n.type === 'symlink' && n.dataBlocks > 0) yield n;
    yield* this.files;
  }

  /** Blocks of content and xattr blocks, ignoring extent leaves and metadata (a lower bound). */
  contentBlocks(): number {
    let total = 0;
    for (const n of this.nodes) {
      if (!n) continue;
      if (n.type === 'directory') n.dataBlocks = Math.max(n.minBlocks, dirBlockCount(dirRecordsFor(n)));
      total += n.dataBlocks + (n.blockXattrs.length > 0 ? 1 : 0);
    }
    return total;
  }
}

/** A directory entry's name: the bytes of the path's last component. */
const nameOf = (path: string) => {
  const name = encodeName(basename(path));
  if (name.length > 255) throw new Ext4LimitError(`a name longer than 255 bytes: /${printableName(path)}`);
  return name;
};

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');
export function dirRecordsFor(n: Node): DirRecord[] {
  return [{ name: DOT, ino: n.ino, type: FT.directory }, { name: DOTDOT, ino: n.parent!, type: FT.directory }, ...n.records!];
}

/** Where everything goes for one filesystem size; `overflow` > 0: the blocks that did not fit. */
export interface Allocation {
  geo: Geometry;
  journal: Extent[];
  journalTree: number[];
  /** Blocks used in each group's data area (from its start: allocation is linear). */
  usedData: number[];
  overflow: number;
}

export function allocate(tree: Tree, requestedBlocks: number, inodes: number, maxExtent = MAX_EXTENT_LEN): Allocation {
  tree.contentBlocks();
  const geo = geometry(requestedBlocks, Math.max(inodes, tree.inodesUsed));
  const usedData = new Array<number>(geo.groups).fill(0);
  let g = 0;
  let overflow = 0;
  /** `n` blocks for logical blocks from `logical` on, as extents appended to `out`. */
  const take = (n: number, logical: number, out: Extent[]): void => {
    while (n > 0) {
      if (g >= geo.groups) {
        overflow += n;
        return;
      }
      const dataStart = g * BLOCKS_PER_GROUP + overhead(geo, g);
      const avail = groupBlocks(geo, g) - overhead(geo, g) - usedData[g]!;
      if (avail <= 0) {
        g++;
        continue;
      }
      const len = Math.min(n, avail, maxExtent);
      out.push({ logical, start: dataStart + usedData[g]!, len });
      usedData[g]! += len;
      logical += len;
      n -= len;
    }
  };
  const one = (): number => {
    const x: Extent[] = [];
    take(1, 0, x);
    return x[0]?.start ?? 0;
  };
  // Each run of logical blocks gets its own extents: the gaps between runs are the file's holes.
  const place = (runs: readonly BlockRun[]): { extents: Extent[]; treeBlocks: number[] } => {
    const extents: Extent[] = [];
    for (const r of runs) take(r.len, r.logical, extents);
    const treeBlocks: number[] = [];
    for (let i = treeBlocksFor(extents.length); i > 0; i--) treeBlocks.push(one());
    return { extents, treeBlocks };
  };
  const jblocks = journalBlocks(geo.blocks);
  const journal = place([{ logical: 0, len: jblocks }]);
  for (const n of tree.withBlocks()) {
    const p = place(n.runs ?? [{ logical: 0, len: n.dataBlocks }]);
    n.extents = p.extents;
    n.treeBlocks = p.treeBlocks;
  }
  for (const n of tree.nodes) if (n && n.blockXattrs.length > 0) n.xattrBlock = one();
  return { geo, journal: journal.extents, journalTree: journal.treeBlocks, usedData, overflow };
}
