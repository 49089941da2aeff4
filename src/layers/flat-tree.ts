// The flattened tree of an image: every final node with its metadata, which paths share an inode
// (hardlink groups), where each regular file's content lives (layer, header offset), and what each
// layer changed. Built by pass 1 (scan.ts), consumed by pass 2 (emit.ts) and the browse commands,
// and saved in the cache as the browse index.
//
// Order: nodes are kept depth first, each directory's children sorted by name (code unit order),
// so parents always come before their children and a subtree is one contiguous run.
//
// Storage is columnar (one array per field, a node's path rebuilt from its parent and its name),
// the same in memory and in the index file: loading an index is JSON.parse plus one pass, and
// TreeNode objects are only made for the nodes asked for. 200k nodes come to ~15 MB of JSON.
import type { FsEntry, FsEntryType } from './fs-entry.ts';
import { ROOT, joinPath, normalisePath } from './normalise-path.ts';
import type { SparseSegment } from './sparse.ts';

export interface TreeNode extends FsEntry {
  /** Regular files always; other non-directories only when hardlinked. Paths that share it are one inode. */
  inode?: number;
}

export interface ContentSource {
  /** Index of the layer (LayerReader.index) whose tar holds the body. */
  layer: number;
  /** Offset of the entry's first header block in that layer's uncompressed tar. */
  offset: number;
  size: number;
}

export type ChangeKind = 'added' | 'modified' | 'removed';

export interface LayerChange {
  layer: number;
  digest: string;
  diffId?: string;
  /** Paths absent before the layer and present after it. */
  added: number;
  /** Paths present before and after, that the layer wrote (or whose type it changed). */
  modified: number;
  /** Paths present before and absent after (whiteouts, opaque whiteouts, replacement). */
  removed: number;
  /** Bytes of regular-file content the layer brought for added / modified paths (each inode once). */
  addedBytes: number;
  modifiedBytes: number;
  /** Sorted by path. Sizes: regular files' content size (before the layer for removed paths), else 0. */
  paths?: { path: string; change: ChangeKind; size: number; type: FsEntryType }[];
}

/** The columns of a tree; node 0 is the root, the rest depth first. */
export interface TreeColumns {
  /** Last path component per node; '' for the root. */
  names: string[];
  /** Index of each node's parent; -1 for the root. */
  parents: Int32Array | number[];
  /** One character per node: f d l c b p. */
  types: string;
  modes: number[];
  uids: number[];
  gids: number[];
  mtimes: number[];
  sizes: number[];
  /** 0 for none. */
  inodes: number[];
  /** String table for user and group names; 0 is ''. */
  strings: string[];
  unames: number[];
  gnames: number[];
  links: Map<number, string>;
  devs: Map<number, [number, number]>;
  xattrs: Map<number, Map<string, Buffer>>;
  /** Content source of each inode id (-1: none, e.g. a hardlinked symlink). */
  srcLayers: number[];
  srcOffsets: number[];
  /** Sparse files' maps, by inode id. */
  sparse: Map<number, SparseSegment[]>;
  /** True when a layer had an entry for the root directory itself. */
  rootExplicit: boolean;
}

/**
 * Extended attributes of nodes without any share this one map; it refuses writes so that no
 * consumer can add an attribute to every node at once.
 */
class NoXattrs extends Map<string, Buffer> {
  override set(key: string, _value: Buffer): this {
    throw new TypeError(`cannot set xattr ${key} on the shared empty xattr map; copy it first`);
  }
}
export const NO_XATTRS: Map<string, Buffer> = new NoXattrs();

/** 2: names keep their bytes (raw-name.ts), sparse maps. */
export const FORMAT_VERSION = 2;

export const TYPE_CHAR: Record<FsEntryType, string> = {
  file: 'f',
  directory: 'd',
  symlink: 'l',
  hardlink: 'h',
  'char-device': 'c',
  'block-device': 'b',
  fifo: 'p',
};
/** The type characters as bytes (a tree's types column is one latin1 string). */
export const TYPE_CODE: Record<FsEntryType, number> = Object.fromEntries(Object.entries(TYPE_CHAR).map(([t, c]) => [t, c.charCodeAt(0)])) as Record<FsEntryType, number>;
const CHAR_TYPE: Record<string, FsEntryType> = Object.fromEntries(Object.entries(TYPE_CHAR).map(([t, c]) => [c, t as FsEntryType]));
const CHANGE_CHAR: Record<ChangeKind, string> = { added: 'a', modified: 'm', removed: 'r' };
const CHAR_CHANGE: Record<string, ChangeKind> = { a: 'added', m: 'modified', r: 'removed' };
const DIR = 'd'.charCodeAt(0);
/** Type characters a node may have (a hardlink is a shared inode, never a node type). */
const NODE_TYPE_CODES = new Set([...'fdlcbp'].map((ch) => ch.charCodeAt(0)));
const FILE = 'f'.charCodeAt(0);

/** After this many lookups by path, a full path index pays for itself. */
const INDEX_AFTER = 64;

export class FlatTree {
  readonly fileCount: number;
  readonly totalSize: number;
  readonly rootExplicit: boolean;
  private readonly c: TreeColumns;
  private readonly parents: Int32Array;
  /** Index one past the last descendant of each node. */
  private readonly ends: Int32Array;
  private changes: LayerChange[] | undefined;
  private encodedChanges: SerialisedLayerChange[] | undefined;
  private paths: string[] | undefined;
  private index: Map<string, number> | undefined;
  private lookups = 0;

  constructor(columns: TreeColumns, layerChanges: LayerChange[] | { encoded: SerialisedLayerChange[] }) {
    const c = columns;
    const n = c.names.length;
    if (n === 0 || c.types.charCodeAt(0) !== DIR) throw new Error('FlatTree: node 0 must be the root directory');
    this.c = c;
    this.rootExplicit = c.rootExplicit;
    this.parents = c.parents instanceof Int32Array ? c.parents : Int32Array.from(c.parents);
    // Kept front-coded until someone asks (only `imgx layers` does): a third of the memory.
    this.encodedChanges = Array.isArray(layerChanges) ? layerChanges.map(encodeLayerChange) : layerChanges.encoded;
    this.ends = new Int32Array(n);
    for (let i = n - 1; i >= 0; i--) {
      if (this.ends[i] === 0) this.ends[i] = i + 1;
      const p = this.parents[i]!;
      if (p >= 0 && this.ends[p]! < this.ends[i]!) this.ends[p] = this.ends[i]!;
    }
    let files = 0;
    let bytes = 0;
    const seen = new Uint8Array(c.srcLayers.length);
    for (let i = 0; i < n; i++) {
      if (c.types.charCodeAt(i) !== FILE) continue;
      files++;
      const ino = c.inodes[i]!;
      if (seen[ino] !== 1) bytes += c.sizes[i]!;
      if (ino !== 0) seen[ino] = 1;
    }
    this.fileCount = files;
    this.totalSize = bytes;
  }

  /** Number of nodes, the root included. */
  get size(): number {
    return this.c.names.length;
  }

  /** What each layer added, modified and removed (decoded from the index on first use). */
  get layerChanges(): LayerChange[] {
    this.changes ??= decodeChanges(this.encodedChanges ?? []);
    this.encodedChanges = undefined;
    return this.changes;
  }

  // ---- nodes ----------------------------------------------------------------------------------

  private allPaths(): string[] {
    if (!this.paths) {
      const { names } = this.c;
      const n = names.length;
      const paths: string[] = new Array(n);
      paths[0] = ROOT;
      for (let i = 1; i < n; i++) {
        const p = this.parents[i]!;
        paths[i] = p === 0 ? names[i]! : `${paths[p]!}/${names[i]!}`;
      }
      this.paths = paths;
    }
    return this.paths;
  }

  private pathOf(i: number): string {
    if (this.paths) return this.paths[i]!;
    if (i === 0) return ROOT;
    const parts: string[] = [];
    for (let j = i; j > 0; j = this.parents[j]!) parts.push(this.c.names[j]!);
    return parts.reverse().join('/');
  }

  private node(i: number, path = this.pathOf(i)): TreeNode {
    const c = this.c;
    const type = CHAR_TYPE[c.types[i]!]!;
    const n: TreeNode = { path, type, mode: c.modes[i]!, uid: c.uids[i]!, gid: c.gids[i]!, mtime: c.mtimes[i]!, size: c.sizes[i]!, xattrs: c.xattrs.get(i) ?? NO_XATTRS };
    const un = c.unames[i]!;
    const gn = c.gnames[i]!;
    if (un !== 0) n.uname = c.strings[un]!;
    if (gn !== 0) n.gname = c.strings[gn]!;
    const link = c.links.get(i);
    if (link !== undefined) n.linkname = link;
    const dev = c.devs.get(i);
    if (dev) {
      n.devmajor = dev[0];
      n.devminor = dev[1];
    }
    const ino = c.inodes[i]!;
    if (ino !== 0) {
      n.inode = ino;
      const sparse = c.sparse.get(ino);
      if (sparse) n.sparse = sparse;
    }
    return n;
  }

  /** Index of the node at a normalised path, walking children (sorted) from the root. */
  private find(path: string): number | undefined {
    if (this.index) return this.index.get(path);
    if (++this.lookups > INDEX_AFTER) {
      const paths = this.allPaths();
      this.index = new Map();
      for (let i = 0; i < paths.length; i++) this.index.set(paths[i]!, i);
      return this.index.get(path);
    }
    if (path === ROOT) return 0;
    const { names } = this.c;
    let i = 0;
    for (const part of path.split('/')) {
      if (this.c.types.charCodeAt(i) !== DIR) return undefined;
      const end = this.ends[i]!;
      let j = i + 1;
      while (j < end && names[j]! < part) j = this.ends[j]!;
      if (j >= end || names[j] !== part) return undefined;
      i = j;
    }
    return i;
  }

  private indexOf(path: string): number | undefined {
    // No node has a NUL in its name (normalisePath would refuse it).
    if (path.includes('\0')) return undefined;
    // Let callers pass `/etc/`, `./etc` and friends.
    return this.find(normalisePath(path).path);
  }

  /** The node at `path` (any spelling that normalises to it). The root `.` is always there. */
  get(path: string): TreeNode | undefined {
    const i = this.indexOf(path);
    return i === undefined ? undefined : this.node(i);
  }

  /** Node `i` in tree order: 0 is the root, then depth first (what `list()` gives, one at a time). */
  at(i: number): TreeNode {
    if (!(i >= 0 && i < this.size)) throw new RangeError(`no node ${i}`);
    return this.node(i, this.allPaths()[i]);
  }

  /** The type of node `i`, without making a TreeNode. */
  typeAt(i: number): FsEntryType {
    return CHAR_TYPE[this.c.types[i]!]!;
  }

  /** The inode id of node `i` (0: none). */
  inodeAt(i: number): number {
    return this.c.inodes[i]!;
  }

  /** Inode ids run from 1 to this number. */
  get inodeCount(): number {
    return this.c.srcLayers.length - 1;
  }

  /** Every node, depth first with sorted children; `.` first only if a layer had it. */
  list(): TreeNode[] {
    const paths = this.allPaths();
    const out: TreeNode[] = [];
    for (let i = this.rootExplicit ? 0 : 1; i < paths.length; i++) out.push(this.node(i, paths[i]));
    return out;
  }

  /** Every node under `path` (not itself), depth first. */
  descendants(path: string): TreeNode[] {
    const i = this.indexOf(path);
    if (i === undefined) return [];
    const out: TreeNode[] = [];
    for (let j = i + 1; j < this.ends[i]!; j++) out.push(this.node(j));
    return out;
  }

  /** Direct children of a directory, sorted by name; empty for anything else. */
  children(path: string): TreeNode[] {
    const i = this.indexOf(path);
    if (i === undefined) return [];
    const out: TreeNode[] = [];
    const base = this.pathOf(i);
    const end = this.ends[i]!;
    for (let j = i + 1; j < end; j = this.ends[j]!) out.push(this.node(j, joinPath(base, this.c.names[j]!)));
    return out;
  }

  /** Where a regular file's content is (for a hardlinked path: its inode's). */
  contentSource(path: string): ContentSource | undefined {
    const i = this.indexOf(path);
    if (i === undefined || this.c.types.charCodeAt(i) !== FILE) return undefined;
    const s = this.sourceOfInode(this.c.inodes[i]!);
    return s && { layer: s.layer, offset: s.offset, size: this.c.sizes[i]! };
  }

  /** Content source by inode id (emit uses it). */
  sourceOfInode(inode: number): { layer: number; offset: number } | undefined {
    const layer = this.c.srcLayers[inode];
    if (layer === undefined || layer < 0) return undefined;
    return { layer, offset: this.c.srcOffsets[inode]! };
  }

  /** Paths that share an inode, groups of two or more, each group and the list in tree order. */
  hardlinkGroups(): string[][] {
    const groups = new Map<number, number[]>();
    const { inodes } = this.c;
    for (let i = 0; i < inodes.length; i++) {
      const ino = inodes[i]!;
      if (ino === 0) continue;
      const g = groups.get(ino);
      if (g) g.push(i);
      else groups.set(ino, [i]);
    }
    const out: string[][] = [];
    for (const g of groups.values()) if (g.length > 1) out.push(g.map((i) => this.pathOf(i)));
    return out;
  }

  // ---- the browse index form ------------------------------------------------------------------

  toJSON(): SerialisedTree {
    const c = this.c;
    return {
      version: FORMAT_VERSION,
      rootExplicit: c.rootExplicit,
      names: c.names,
      parents: Array.from(this.parents),
      types: c.types,
      modes: c.modes,
      uids: c.uids,
      gids: c.gids,
      mtimes: c.mtimes,
      sizes: c.sizes,
      inodes: c.inodes,
      strings: c.strings,
      unames: c.unames,
      gnames: c.gnames,
      links: [...c.links],
      devs: [...c.devs].map(([i, [ma, mi]]) => [i, ma, mi]),
      xattrs: [...c.xattrs].map(([i, xs]) => [i, [...xs].map(([k, v]) => [k, v.toString('base64')])]),
      srcLayers: c.srcLayers,
      srcOffsets: c.srcOffsets,
      sparse: [...c.sparse].map(([ino, segs]) => [ino, segs.flatMap((x) => [x.offset, x.size])]),
      layerChanges: this.encodedChanges ?? this.changes!.map(encodeLayerChange),
    };
  }

  /** The inverse of toJSON. Throws on anything malformed (the cache treats that as absent). */
  static fromJSON(j: unknown): FlatTree {
    const bad = (why: string): never => {
      throw new Error(`flat tree index: ${why}`);
    };
    if (typeof j !== 'object' || j === null) bad('not an object');
    const o = j as Partial<SerialisedTree>;
    if (o.version !== FORMAT_VERSION) bad(`version ${String(o.version)}`);
    const { names, parents, types, modes, uids, gids, mtimes, sizes, inodes, strings, unames, gnames, srcLayers, srcOffsets } = o;
    if (!Array.isArray(names) || names.length === 0) bad('names');
    const n = names!.length;
    for (const [k, a] of Object.entries({ parents, modes, uids, gids, mtimes, sizes, inodes, unames, gnames })) {
      if (!Array.isArray(a) || a.length !== n) bad(k);
    }
    if (typeof types !== 'string' || types.length !== n) bad('types');
    if (!Array.isArray(strings) || !Array.isArray(srcLayers) || !Array.isArray(srcOffsets) || srcLayers.length !== srcOffsets.length) bad('tables');
    const par = Int32Array.from(parents!);
    if (par[0] !== -1 || types!.charCodeAt(0) !== DIR) bad('root');
    for (let i = 1; i < n; i++) {
      // A tampered index must not smuggle `..` or `/` into a path a sink will write.
      const name = names![i];
      const p = par[i]!;
      if (p < 0 || p >= i || types!.charCodeAt(p) !== DIR) bad(`parent of node ${i}`);
      if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) bad(`name of node ${i}`);
      if (!NODE_TYPE_CODES.has(types!.charCodeAt(i))) bad(`type of node ${i}`);
      if (unames![i]! >= strings!.length || gnames![i]! >= strings!.length || inodes![i]! >= srcLayers!.length) bad(`tables of node ${i}`);
    }
    const index = (i: unknown) => (Number.isInteger(i) && (i as number) >= 0 && (i as number) < n ? (i as number) : bad('a node index'));
    const links = new Map<number, string>();
    for (const [i, l] of o.links ?? []) links.set(index(i), String(l));
    const devs = new Map<number, [number, number]>();
    for (const [i, ma, mi] of o.devs ?? []) devs.set(index(i), [ma, mi]);
    const xattrs = new Map<number, Map<string, Buffer>>();
    for (const [i, xs] of o.xattrs ?? []) xattrs.set(index(i), new Map(xs.map(([k, v]) => [k, Buffer.from(v, 'base64')])));
    const sparse = new Map<number, SparseSegment[]>();
    for (const [ino, flat] of o.sparse ?? []) {
      if (!Number.isInteger(ino) || ino <= 0 || ino >= srcLayers!.length || !Array.isArray(flat) || flat.length % 2 !== 0) bad('a sparse map');
      const segs: SparseSegment[] = [];
      for (let k = 0; k < flat.length; k += 2) {
        const [offset, size] = [flat[k], flat[k + 1]];
        if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || offset! < 0 || size! < 0) bad('a sparse map');
        segs.push({ offset: offset!, size: size! });
      }
      sparse.set(ino, segs);
    }
    if (!Array.isArray(o.layerChanges)) bad('layerChanges');
    const columns: TreeColumns = {
      names: names!,
      parents: par,
      types: types!,
      modes: modes!,
      uids: uids!,
      gids: gids!,
      mtimes: mtimes!,
      sizes: sizes!,
      inodes: inodes!,
      strings: strings!,
      unames: unames!,
      gnames: gnames!,
      links,
      devs,
      xattrs,
      srcLayers: srcLayers!,
      srcOffsets: srcOffsets!,
      sparse,
      rootExplicit: o.rootExplicit === true,
    };
    return new FlatTree(columns, { encoded: o.layerChanges! });
  }
}

// ---- layer changes in the index: paths front-coded (sorted paths share long prefixes) ----------

export type SerialisedLayerChange = Omit<LayerChange, 'paths'> & {
  paths?: { prefix: number[]; suffix: string[]; change: string; size: number[]; type: string };
};

/** A layer's change list front-coded (the builder keeps them this way from the start: a third of the memory). */
export function encodeLayerChange(c: LayerChange): SerialisedLayerChange {
  const { paths, ...rest } = c;
  if (!paths) return rest;
  const prefix: number[] = [];
  const suffix: string[] = [];
  // Characters gathered in arrays and joined once: `s += c` a million times keeps a million-deep
  // chain of cons strings (32 bytes a character) until something flattens it.
  const change: string[] = [];
  const type: string[] = [];
  let prev = '';
  for (const p of paths) {
    let k = 0;
    const max = Math.min(prev.length, p.path.length);
    while (k < max && prev.charCodeAt(k) === p.path.charCodeAt(k)) k++;
    prefix.push(k);
    suffix.push(p.path.slice(k));
    prev = p.path;
    change.push(CHANGE_CHAR[p.change]);
    type.push(TYPE_CHAR[p.type]);
  }
  return { ...rest, paths: { prefix, suffix, change: change.join(''), size: paths.map((p) => p.size), type: type.join('') } };
}

function decodeChanges(encoded: SerialisedLayerChange[]): LayerChange[] {
  return encoded.map((c) => {
    const { paths, ...rest } = c;
    if (!paths) return rest;
    const out: NonNullable<LayerChange['paths']> = [];
    let prev = '';
    for (let k = 0; k < paths.prefix.length; k++) {
      const path = prev.slice(0, paths.prefix[k]) + paths.suffix[k];
      out.push({ path, change: CHAR_CHANGE[paths.change[k]!] ?? 'modified', size: paths.size[k] ?? 0, type: CHAR_TYPE[paths.type[k]!] ?? 'file' });
      prev = path;
    }
    return { ...rest, paths: out };
  });
}

export interface SerialisedTree {
  version: number;
  rootExplicit: boolean;
  names: string[];
  parents: number[];
  types: string;
  modes: number[];
  uids: number[];
  gids: number[];
  mtimes: number[];
  sizes: number[];
  inodes: number[];
  strings: string[];
  unames: number[];
  gnames: number[];
  links: [number, string][];
  devs: [number, number, number][];
  /** Values base64. */
  xattrs: [number, [string, string][]][];
  srcLayers: number[];
  srcOffsets: number[];
  /** Inode id, then offset and size of each segment. */
  sparse?: [number, number[]][];
  layerChanges: SerialisedLayerChange[];
}
