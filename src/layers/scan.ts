// Pass 1 of flatten: read every layer's headers (bodies skipped, never buffered; layers in
// parallel, bounded; the diff_id checked on the way), then apply the layers' entry lists in order
// to an in-memory model of the tree. The result is the FlatTree that pass 2 (emit.ts) and the
// browse commands use. Pure: no filesystem access; the layers come in as LayerReaders.
//
// Rules: a layer's entries apply in tar order, whiteouts included, as containerd's applier
// (archive.Apply, the one Docker and Kubernetes run) applies them to a directory:
// - `DIR/.wh.NAME` removes NAME as it is at that moment: what the lower layers left, or what an
//   earlier entry of this layer wrote. A later entry of the layer can bring NAME back.
// - `DIR/.wh..wh..opq` removes everything under DIR that this layer has not written so far (a
//   directory this layer wrote is kept and searched in turn; anything else goes with its whole
//   subtree); a second one for the same DIR in a layer does nothing.
// - Either makes its missing parent directories (as containerd and Docker make them for every
//   entry); under a non-directory it does nothing (nothing is under a file, and a symlink is never
//   followed).
// - A directory over a directory replaces the metadata (xattrs included) and keeps the children;
//   anything else over anything else replaces it, a directory with its whole subtree; a later
//   duplicate wins.
// - A missing parent is created as an implicit directory (0755, root:root, mtime 0). A parent that
//   is a file or a symlink is replaced by such a directory (IMGX_PARENT_REPLACED): symlinks are
//   never resolved, so one planted by a lower layer cannot redirect a later entry.
// - A hardlink joins the inode at its target path at that moment (target not resolved through
//   symlinks; missing or a directory: IMGX_BAD_HARDLINK, skipped), so it keeps that content when
//   a later whiteout of the same layer removes the target. Like tar's link(2) and umoci, the link
//   entry's own metadata is ignored: the inode keeps its own.
// Limits: a name deeper than MAX_DEPTH components, longer than MAX_PATH_BYTES, or with a
// component longer than MAX_NAME_BYTES (Linux's own limits), and a symlink target longer than
// MAX_PATH_BYTES, are refused with IMGX_UNSAFE_PATH before anything of them is kept.
import { ImgxError } from '../errors.ts';
import type { Warnings } from '../warnings.ts';
import type { FsEntryType } from './fs-entry.ts';
import { FlatTree, TYPE_CODE, encodeLayerChange, type ChangeKind, type LayerChange, type SerialisedLayerChange, type TreeColumns } from './flat-tree.ts';
import { layerName, type LayerReader } from './layer-reader.ts';
import { ROOT, baseName, joinPath, normalisePath, splitPath } from './normalise-path.ts';
import { MAX_SPARSE_ENTRIES, type SparseSegment } from './sparse.ts';
import type { TarHeader } from './tar-header.ts';
import { nameByteLength, printableName } from '../util/raw-name.ts';
import { readTar, type TarInput } from './tar-reader.ts';
import { classifyWhiteout } from './whiteout.ts';

export interface ScanOptions {
  warnings: Warnings;
  /** Layers read at once (default 4). Application is always in layer order. */
  concurrency?: number;
  signal?: AbortSignal;
  /** Keep the per-layer list of changed paths in `layerChanges` (default true). */
  recordPaths?: boolean;
  /**
   * Receives the content of every regular file as pass 1 reads past it, so that a sink can keep it
   * (the directory writer stages it) and pass 2 need not read the layer again.
   */
  contents?: ContentSink;
  /** Called once every layer is read and applied, before the tree is built from the model. */
  layersApplied?: () => void;
  /** Paths the image may have in all (default MAX_TREE_PATHS; tests set less). */
  maxPaths?: number;
}

/**
 * Where pass 1 hands file contents. `file` is called for every non-empty regular file of a layer
 * (whiteouts excluded), with the layer index and the entry's header offset, which name its content
 * in the FlatTree; it must read the whole body (through `readData`: the stored data, each piece
 * with its offset in the file; a sparse file's holes are not given, the sink makes the file
 * `entry.size` long) before it resolves. Whatever the layers hold, the names it is given are
 * numbers: the entry's path is only for messages.
 */
export interface ContentSink {
  file(layer: number, offset: number, entry: ScanEntry, readData: (sink: (chunk: Buffer, offset: number) => void) => Promise<void>): Promise<void>;
}

// ---- what pass 1 keeps of a layer -------------------------------------------------------------

type NodeType = Exclude<FsEntryType, 'hardlink'>;

/** One entry of a layer, as much as flatten needs: metadata and where its header is. */
export interface ScanEntry {
  path: string;
  type: FsEntryType;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  size: number;
  /** Symlink target as given; hardlink target normalised. */
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer> | undefined;
  offset: number;
  /** Sparse files: where the stored data goes (everything else is a hole). */
  sparse?: SparseSegment[];
}

/** A whiteout as it stands among a layer's entries: `path` is what it removes, or the opaque directory. */
export interface WhiteoutOp {
  whiteout: 'file' | 'opaque';
  path: string;
}

export interface LayerEntries {
  /** Entries and whiteouts in tar order. */
  entries: (ScanEntry | WhiteoutOp)[];
}

/** Deepest name accepted, in components (node-tar's default). */
export const MAX_DEPTH = 1024;
/** Longest name (and symlink target) accepted, in bytes: PATH_MAX less its NUL. */
export const MAX_PATH_BYTES = 4095;
/** Longest path component accepted, in bytes: NAME_MAX. */
export const MAX_NAME_BYTES = 255;
/**
 * Paths the layers of an image may place in all (entries, and the directories made for them):
 * the tree is held in memory, ~0.4 KiB a file and ~1 KiB a directory at the peak, and Node's heap
 * stops at ~4 GiB; real images have up to a few hundred thousand.
 */
export const MAX_TREE_PATHS = 2_500_000;
/** Segments of sparse maps an image may have in all (each costs memory until the tree is written). */
export const MAX_IMAGE_SPARSE_SEGMENTS = MAX_SPARSE_ENTRIES;

function isWhiteout(e: ScanEntry | WhiteoutOp): e is WhiteoutOp {
  return (e as WhiteoutOp).whiteout !== undefined;
}

/** A name (already normalised) within the limits, or IMGX_UNSAFE_PATH. */
function checkLimits(path: string, what: string, where: string): void {
  // Cheap bounds first: every component is at least one byte, a UTF-16 unit at most three.
  if (path.length <= MAX_NAME_BYTES / 3) return;
  let depth = 1;
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i < path.length && path.charCodeAt(i) !== 0x2f) continue;
    if (i - start > MAX_NAME_BYTES / 3 && nameByteLength(path.slice(start, i)) > MAX_NAME_BYTES) {
      throw new ImgxError('IMGX_UNSAFE_PATH', `${where}: ${what} ${shortName(path)} has a component longer than ${MAX_NAME_BYTES} bytes`);
    }
    if (i < path.length) depth++;
    if (depth > MAX_DEPTH) throw new ImgxError('IMGX_UNSAFE_PATH', `${where}: ${what} ${shortName(path)} is deeper than ${MAX_DEPTH} directories`);
    start = i + 1;
  }
  if (path.length > MAX_PATH_BYTES / 3 && nameByteLength(path) > MAX_PATH_BYTES) {
    throw new ImgxError('IMGX_UNSAFE_PATH', `${where}: ${what} ${shortName(path)} is longer than ${MAX_PATH_BYTES} bytes`);
  }
}

/** A name for a one-line message: printable, and cut. */
function shortName(name: string): string {
  const p = printableName(name);
  return `"${p.length > 120 ? `${p.slice(0, 60)}…${p.slice(-40)}` : p}"`;
}

const SCHILY_XATTR = 'SCHILY.xattr.';
const LIBARCHIVE_XATTR = 'LIBARCHIVE.xattr.';

/**
 * Extended attributes of an entry. SCHILY.xattr.NAME carries the value byte for byte (GNU tar, Go,
 * BuildKit). LIBARCHIVE.xattr.NAME (bsdtar) has a URL-encoded name and a base64 value; it is read
 * too, and SCHILY wins when both name one attribute.
 */
export function xattrsOf(pax: Map<string, Buffer> | undefined): Map<string, Buffer> | undefined {
  if (!pax) return undefined;
  let out: Map<string, Buffer> | undefined;
  for (const [k, v] of pax) {
    if (k.startsWith(LIBARCHIVE_XATTR)) {
      let name: string;
      try {
        name = decodeURIComponent(k.slice(LIBARCHIVE_XATTR.length));
      } catch {
        continue;
      }
      if (!name || out?.has(name)) continue;
      (out ??= new Map()).set(name, Buffer.from(v.toString('latin1'), 'base64'));
    }
  }
  for (const [k, v] of pax) {
    if (k.startsWith(SCHILY_XATTR) && k.length > SCHILY_XATTR.length) (out ??= new Map()).set(k.slice(SCHILY_XATTR.length), v);
  }
  return out;
}

/**
 * One string for each owner name (every header decodes its own copy: a million "root"s otherwise).
 * Bounded: names past the first few thousand are kept as they come.
 */
const owners = new Map<string, string>();
function intern(s: string): string {
  const seen = owners.get(s);
  if (seen !== undefined) return seen;
  if (owners.size < 4096) owners.set(s, s);
  return s;
}

const KNOWN: ReadonlySet<string> = new Set(['file', 'directory', 'symlink', 'hardlink', 'char-device', 'block-device', 'fifo']);

/**
 * Turns one tar header into what flatten keeps, or records a whiteout. Throws on names that can
 * never be applied (NUL bytes, a non-directory named as the root, malformed whiteouts).
 */
export function collectEntry(out: LayerEntries, h: TarHeader, offset: number, warnings: Warnings, where: string, sparse?: SparseSegment[]): ScanEntry | undefined {
  const n = normalisePath(h.name);
  checkLimits(n.path, 'name', where);
  // A whiteout is its name alone, whatever its type (as umoci and containerd read them).
  const wh = classifyWhiteout(n.path);
  if (n.clamped) warnings.warn('IMGX_PATH_CLAMPED', `${where}: ${shortName(h.name)} confined to ${shortName(n.path)}`);
  switch (wh.kind) {
    case 'whiteout':
      out.entries.push({ whiteout: 'file', path: wh.target });
      return;
    case 'opaque':
      out.entries.push({ whiteout: 'opaque', path: wh.dir });
      return;
    case 'meta':
      return;
  }
  if (!KNOWN.has(h.type)) {
    warnings.warn('IMGX_UNKNOWN_ENTRY', `${where}: skipped ${shortName(h.name)} of unknown type ${JSON.stringify(h.typeflag)}`);
    return;
  }
  if (n.path === ROOT && h.type !== 'directory') {
    throw new ImgxError('IMGX_UNSAFE_PATH', `${where}: a ${h.type} entry ${shortName(h.name)} names the root directory`);
  }
  let linkname = h.linkname;
  if (h.type === 'hardlink') {
    const l = normalisePath(h.linkname);
    checkLimits(l.path, 'hardlink target', where);
    if (l.clamped) warnings.warn('IMGX_PATH_CLAMPED', `${where}: hardlink target ${shortName(h.linkname)} confined to ${shortName(l.path)}`);
    linkname = l.path;
  } else if (h.type === 'symlink' && linkname.length > MAX_PATH_BYTES / 3 && nameByteLength(linkname) > MAX_PATH_BYTES) {
    throw new ImgxError('IMGX_UNSAFE_PATH', `${where}: symlink ${shortName(n.path)} has a target longer than ${MAX_PATH_BYTES} bytes`);
  }
  const dev = h.type === 'char-device' || h.type === 'block-device';
  const entry: ScanEntry = {
    path: n.path,
    type: h.type as FsEntryType,
    mode: h.mode & 0o7777,
    uid: h.uid,
    gid: h.gid,
    uname: intern(h.uname),
    gname: intern(h.gname),
    mtime: h.mtime,
    size: h.type === 'file' ? h.size : 0,
    linkname: h.type === 'symlink' || h.type === 'hardlink' ? linkname : '',
    devmajor: dev ? h.devmajor : 0,
    devminor: dev ? h.devminor : 0,
    xattrs: xattrsOf(h.pax),
    offset,
  };
  if (sparse && h.type === 'file') entry.sparse = sparse;
  out.entries.push(entry);
  return entry;
}

/** Counts sparse segments across an image's layers (scanned in parallel) against MAX_IMAGE_SPARSE_SEGMENTS. */
export class SparseBudget {
  private used = 0;
  take(n: number, where: string): void {
    this.used += n;
    if (this.used > MAX_IMAGE_SPARSE_SEGMENTS) throw new ImgxError('IMGX_BAD_LAYER', `${where}: more than ${MAX_IMAGE_SPARSE_SEGMENTS} sparse file segments in the image`);
  }
}

/**
 * Reads one layer's headers to the end of its stream (the diff_id checked). Bodies are skipped,
 * or handed to `contents` when given.
 */
export async function readLayerEntries(layer: LayerReader, warnings: Warnings, signal?: AbortSignal, contents?: ContentSink, budget = new SparseBudget()): Promise<LayerEntries> {
  const where = layerName(layer.index, layer.desc.digest);
  // Recycled chunks when the layer offers them: pass 1 copies what it keeps (headers become
  // strings, contents go to the sink synchronously).
  const chunks = await layer.openChunks?.({ ...(signal ? { signal } : {}) });
  const input: TarInput = chunks ?? (await layer.open({ verifyDiffId: true, signal }));
  const out: LayerEntries = { entries: [] };
  try {
    for await (const e of readTar(input, { what: where, skipBodies: !contents, recycled: chunks !== undefined })) {
      signal?.throwIfAborted();
      let entry: ScanEntry | undefined;
      try {
        if (e.sparse) budget.take(e.sparse.length, where);
        entry = collectEntry(out, e.header, e.offset, warnings, where, e.sparse);
      } catch (err) {
        // The same error, with the layer named.
        if (err instanceof ImgxError && !err.message.startsWith(where)) throw new ImgxError(err.code, `${where}: ${err.message}`);
        throw err;
      }
      if (contents && entry?.type === 'file' && entry.size > 0) await contents.file(layer.index, e.offset, entry, (sink) => e.readData(sink));
    }
    // readTar reads past the end-of-archive blocks to the end of the input, so the diff_id check
    // (which covers every byte, the trailing padding included) has run once it returns.
  } finally {
    if (!input.destroyed) input.destroy();
  }
  return out;
}

// ---- the model --------------------------------------------------------------------------------

/** A node's metadata: a ScanEntry of any type but hardlink (or an implicit directory's). */
type Meta = Omit<ScanEntry, 'type' | 'path' | 'offset'> & { type: NodeType };

/** A non-directory's identity: paths that share one are hardlinks of each other. */
interface Inode {
  meta: Meta;
  /** Content source of a regular file: layer index and header offset (-1 for other types). */
  layer: number;
  offset: number;
  /** Paths that have it in the final tree (counted by finish()). */
  refs?: number;
}

interface MNode {
  /** Directories only. */
  children?: Map<string, MNode>;
  /** Directories: their own metadata. */
  meta?: Meta;
  /** Non-directories. */
  inode?: Inode;
  /** Removed from the tree (nodes are never put back: a path that comes again gets a new node). */
  dead?: boolean;
  /** The layer whose entry wrote this node (an opaque whiteout of that layer keeps it). */
  stamp?: number;
}

const IMPLICIT_DIR: Readonly<Meta> = Object.freeze({
  type: 'directory',
  mode: 0o755,
  uid: 0,
  gid: 0,
  uname: '',
  gname: '',
  mtime: 0,
  size: 0,
  linkname: '',
  devmajor: 0,
  devminor: 0,
  xattrs: undefined,
});

/**
 * The children of every empty directory: one shared map, swapped for a map of its own by place()
 * on the first child (a map each cost ~150 bytes, and a hostile layer can make millions of empty
 * directories). Only place() adds to a directory's children.
 */
const NO_CHILDREN: Map<string, MNode> = new Map();

/** Metadata objects are replaced, never changed: implicit directories share one. */
function newDir(meta: Meta = IMPLICIT_DIR): MNode {
  return { children: NO_CHILDREN, meta };
}

/** The entry itself serves as the metadata (one object less per entry; nothing mutates it). */
function metaOf(e: ScanEntry): Meta {
  return e as Meta;
}

/** How a path looked before the layer first touched it. */
interface Before {
  type: NodeType;
  size: number;
}

/** A path the current layer touched: how it was before the layer, and the node there now. */
interface Touch {
  before: Before | null;
  node: MNode | undefined;
}

function describe(n: MNode): Before {
  return n.children ? { type: 'directory', size: 0 } : { type: n.inode!.meta.type, size: n.inode!.meta.type === 'file' ? n.inode!.meta.size : 0 };
}

/** The mutable tree that layers are applied to, one after the other. */
export class TreeBuilder {
  private readonly root = newDir();
  private rootExplicit = false;
  private readonly warnings: Warnings;
  private readonly recordPaths: boolean;
  /** Per layer applied, what it changed (front-coded). */
  private readonly changes: SerialisedLayerChange[] = [];
  /** Paths the current layer touched. */
  private touched = new Map<string, Touch>();
  private layer = -1;
  private where = '';
  /** Paths placed in the tree so far, by every layer, and how many may be (MAX_TREE_PATHS). */
  private paths = 0;
  private readonly maxPaths: number;
  /** The directory the last entry went into: tars list a directory's entries together. */
  private lastDirPath = '';
  private lastDir: MNode | undefined;

  constructor(opts: { warnings: Warnings; recordPaths?: boolean; maxPaths?: number }) {
    this.warnings = opts.warnings;
    this.recordPaths = opts.recordPaths !== false;
    this.maxPaths = opts.maxPaths ?? MAX_TREE_PATHS;
  }

  /** Applies one layer: its entries and whiteouts in tar order (the rules at the top). */
  applyLayer(index: number, layer: { digest: string; diffId?: string }, entries: LayerEntries): void {
    this.layer = index;
    this.where = layerName(index, layer.digest);
    this.touched = new Map();
    const opaqueDone = new Set<string>();
    for (const e of entries.entries) {
      if (!isWhiteout(e)) this.apply(e);
      else if (e.whiteout === 'file') this.whiteout(e.path);
      else if (!opaqueDone.has(e.path)) {
        opaqueDone.add(e.path);
        this.opaque(e.path);
      }
    }
    this.changes.push(encodeLayerChange(this.account(index, layer)));
  }

  // -- lookups and removal --

  /** The node at a normalised path, never resolving symlinks (a non-directory ancestor: none). */
  private lookup(path: string): MNode | undefined {
    let cur: MNode = this.root;
    for (const part of splitPath(path)) {
      const next = cur.children?.get(part);
      if (!next) return undefined;
      cur = next;
    }
    return cur;
  }

  /** The layer's record of `path`; `current` is what is there before this change. */
  private touch(path: string, current: MNode | undefined): Touch {
    let t = this.touched.get(path);
    if (!t) {
      t = { before: current ? describe(current) : null, node: current };
      this.touched.set(path, t);
    }
    return t;
  }

  /** Puts `node` at `path` in `dir` (whatever was there must already be gone or replaced). */
  private place(dir: MNode, name: string, path: string, current: MNode | undefined, node: MNode): void {
    this.touch(path, current).node = node;
    if (dir.children === NO_CHILDREN) dir.children = new Map();
    dir.children!.set(name, node);
    if (++this.paths > this.maxPaths) throw new ImgxError('IMGX_BAD_LAYER', `${this.where}: more than ${this.maxPaths} paths in the image (imgx's limit)`);
  }

  /** Marks `node` and every descendant removed, recording each path (the caller detaches it). */
  private kill(path: string, node: MNode): void {
    const stack: [string, MNode][] = [[path, node]];
    while (stack.length) {
      const [p, n] = stack.pop()!;
      this.touch(p, n);
      n.dead = true;
      if (n.children) for (const [name, c] of n.children) stack.push([joinPath(p, name), c]);
    }
  }

  /**
   * The directory at `path`, its missing ancestors (and itself) made as implicit directories, as
   * containerd makes a whiteout's parents; undefined when a non-directory is in the way (a
   * whiteout is never followed through a symlink, and nothing is under a file).
   */
  private whiteoutDir(path: string): MNode | undefined {
    let cur = this.root;
    let p = ROOT;
    for (const part of splitPath(path)) {
      p = joinPath(p, part);
      let next = cur.children!.get(part);
      if (!next) {
        next = newDir();
        this.place(cur, part, p, undefined, next);
      } else if (!next.children) return undefined;
      cur = next;
    }
    return cur;
  }

  private whiteout(target: string): void {
    const i = target.lastIndexOf('/');
    const parent = this.whiteoutDir(i < 0 ? ROOT : target.slice(0, i));
    const name = i < 0 ? target : target.slice(i + 1);
    const node = parent?.children!.get(name);
    // Whiting out what is not there is common (and harmless): nothing to do, no warning.
    if (!node) return;
    this.kill(target, node);
    parent!.children!.delete(name);
  }

  /** Removes what this layer has not written under `dir` (containerd's walk over unpackedPaths). */
  private opaque(dir: string): void {
    const node = this.whiteoutDir(dir);
    if (!node) return;
    const stack: [string, MNode][] = [[dir, node]];
    while (stack.length) {
      const [path, d] = stack.pop()!;
      for (const [name, c] of d.children!) {
        const p = joinPath(path, name);
        if (c.stamp !== this.layer) {
          this.kill(p, c);
          d.children!.delete(name);
        } else if (c.children) stack.push([p, c]);
      }
    }
  }

  /**
   * The directory that will hold `path`, created as needed. A file or symlink in the way becomes a
   * directory: never follow it.
   */
  private parentFor(path: string): MNode {
    const slash = path.lastIndexOf('/');
    if (slash < 0) return this.root;
    const dirPath = path.slice(0, slash);
    if (dirPath === this.lastDirPath && this.lastDir && !this.lastDir.dead) return this.lastDir;
    let cur = this.root;
    const parts = dirPath.split('/');
    let p = ROOT;
    for (const part of parts) {
      p = joinPath(p, part);
      let next = cur.children!.get(part);
      if (!next) {
        next = newDir();
        this.place(cur, part, p, undefined, next);
      } else if (!next.children) {
        this.warnings.warn('IMGX_PARENT_REPLACED', `${this.where}: ${shortName(p)} is a ${next.inode!.meta.type}, replaced by a directory to hold ${shortName(path)}`);
        next.dead = true;
        const old = next;
        next = newDir();
        this.place(cur, part, p, old, next);
      }
      cur = next;
    }
    this.lastDirPath = dirPath;
    this.lastDir = cur;
    return cur;
  }

  // -- entries --

  private apply(e: ScanEntry): void {
    if (e.path === ROOT) {
      // collectEntry let only directories through for the root.
      this.rootExplicit = true;
      this.touch(ROOT, this.root);
      this.root.meta = metaOf(e);
      return;
    }
    const parent = this.parentFor(e.path);
    const name = baseName(e.path);
    const existing = parent.children!.get(name);
    if (e.type === 'directory') {
      if (existing?.children) {
        this.touch(e.path, existing);
        existing.meta = metaOf(e);
        existing.stamp = this.layer;
        return;
      }
      if (existing) this.kill(e.path, existing);
      const d = newDir(metaOf(e));
      d.stamp = this.layer;
      this.place(parent, name, e.path, existing, d);
      return;
    }
    let inode: Inode;
    if (e.type === 'hardlink') {
      const target = this.lookup(e.linkname);
      if (!target || target.children) {
        this.warnings.warn('IMGX_BAD_HARDLINK', `${this.where}: hardlink ${shortName(e.path)} to ${target ? 'the directory ' : 'missing '}${shortName(e.linkname)} skipped`);
        return;
      }
      if (existing === target || (existing?.inode !== undefined && existing.inode === target.inode)) {
        if (existing) existing.stamp = this.layer;
        return;
      }
      inode = target.inode!;
    } else {
      inode = { meta: metaOf(e), layer: e.type === 'file' ? this.layer : -1, offset: e.type === 'file' ? e.offset : -1 };
    }
    if (existing) this.kill(e.path, existing);
    this.place(parent, name, e.path, existing, { inode, stamp: this.layer });
  }

  // -- accounting --

  private account(index: number, layer: { digest: string; diffId?: string }): LayerChange {
    const c: LayerChange = { layer: index, digest: layer.digest, added: 0, modified: 0, removed: 0, addedBytes: 0, modifiedBytes: 0 };
    if (layer.diffId !== undefined) c.diffId = layer.diffId;
    const paths: NonNullable<LayerChange['paths']> = [];
    const counted = new Set<Inode>();
    const sorted = [...this.touched.keys()].sort();
    for (const path of sorted) {
      const { before, node } = this.touched.get(path)!;
      const now = node && !node.dead ? node : undefined;
      let change: ChangeKind;
      let type: NodeType;
      let size = 0;
      if (!now) {
        if (!before) continue; // came and went within the layer
        change = 'removed';
        type = before.type;
        size = before.size;
        c.removed++;
      } else {
        change = before ? 'modified' : 'added';
        type = now.children ? 'directory' : now.inode!.meta.type;
        if (type === 'file') {
          size = now.inode!.meta.size;
          // Bytes the layer carries: a file whose content is in this layer, each inode once.
          if (now.inode!.layer === index && !counted.has(now.inode!)) {
            counted.add(now.inode!);
            if (before) c.modifiedBytes += size;
            else c.addedBytes += size;
          }
        }
        if (before) c.modified++;
        else c.added++;
      }
      if (this.recordPaths) paths.push({ path, change, size, type });
    }
    if (this.recordPaths) c.paths = paths;
    this.touched = new Map();
    return c;
  }

  // -- the result --

  /**
   * The final tree: nodes depth first, children sorted, inodes numbered from 1 in tree order. It
   * takes the model apart as it goes (each directory's children are let go once listed), so the
   * columns grow while the model shrinks: the builder is spent afterwards.
   */
  finish(): FlatTree {
    // Inodes of non-files get an id only when shared: count paths per inode first.
    const countStack: MNode[] = [this.root];
    let count = 0;
    while (countStack.length) {
      const n = countStack.pop()!;
      count++;
      if (n.children) for (const c of n.children.values()) countStack.push(c);
      else n.inode!.refs = (n.inode!.refs ?? 0) + 1;
    }
    // Columns made at their final size: grown by doubling, a million-node tree left a few hundred
    // MB of copies for the collector, and the heap grew to hold them (a scan's peak).
    const column = () => new Array<number>(count).fill(0);
    const c: TreeColumns = {
      names: new Array<string>(count).fill(''),
      parents: new Int32Array(count),
      types: '',
      modes: column(),
      uids: column(),
      gids: column(),
      mtimes: column(),
      sizes: column(),
      inodes: column(),
      strings: [''],
      unames: column(),
      gnames: column(),
      links: new Map(),
      devs: new Map(),
      xattrs: new Map(),
      srcLayers: [-1],
      srcOffsets: [-1],
      sparse: new Map(),
      rootExplicit: this.rootExplicit,
    };
    const types = Buffer.alloc(count);
    const stringIds = new Map<string, number>([['', 0]]);
    const str = (s: string) => {
      let id = stringIds.get(s);
      if (id === undefined) {
        id = c.strings.length;
        c.strings.push(s);
        stringIds.set(s, id);
      }
      return id;
    };
    // Ids of inodes with more than one path to come; the others are numbered as they come.
    const ids = new Map<Inode, number>();
    let nextId = 1;
    let next = 0;
    // The stack in three arrays (a tuple per node costs more than the node's columns).
    const stackNames: string[] = [''];
    const stackNodes: MNode[] = [this.root];
    const stackParents: number[] = [-1];
    while (stackNodes.length) {
      const name = stackNames.pop()!;
      const n = stackNodes.pop()!;
      const parent = stackParents.pop()!;
      const idx = next++;
      const m = n.children ? n.meta! : n.inode!.meta;
      c.names[idx] = name;
      c.parents[idx] = parent;
      types[idx] = TYPE_CODE[m.type];
      c.modes[idx] = m.mode;
      c.uids[idx] = m.uid;
      c.gids[idx] = m.gid;
      c.mtimes[idx] = m.mtime;
      c.sizes[idx] = m.type === 'file' ? m.size : 0;
      c.unames[idx] = str(m.uname);
      c.gnames[idx] = str(m.gname);
      if (m.type === 'symlink') c.links.set(idx, m.linkname);
      if (m.type === 'char-device' || m.type === 'block-device') c.devs.set(idx, [m.devmajor, m.devminor]);
      if (m.xattrs && m.xattrs.size > 0) c.xattrs.set(idx, m.xattrs);
      let id = 0;
      if (n.children) {
        const names = [...n.children.keys()].sort();
        for (let k = names.length - 1; k >= 0; k--) {
          stackNames.push(names[k]!);
          stackNodes.push(n.children.get(names[k]!)!);
          stackParents.push(idx);
        }
        n.children.clear();
      } else {
        const ino = n.inode!;
        const shared = ino.refs! > 1;
        if (ino.meta.type === 'file' || shared) {
          id = shared ? (ids.get(ino) ?? 0) : 0;
          if (id === 0) {
            id = nextId++;
            if (shared) ids.set(ino, id);
            c.srcLayers.push(ino.meta.type === 'file' ? ino.layer : -1);
            c.srcOffsets.push(ino.meta.type === 'file' ? ino.offset : -1);
            if (ino.meta.sparse) c.sparse.set(id, ino.meta.sparse);
          }
        }
      }
      c.inodes[idx] = id;
    }
    c.types = types.toString('latin1');
    return new FlatTree(c, { encoded: this.changes });
  }
}

// ---- pass 1 -----------------------------------------------------------------------------------

/**
 * Reads the layers (up to `concurrency` at once, each verified against its diff_id) and applies
 * them in order. The first failure aborts the other reads and is thrown.
 */
export async function scanLayers(layers: LayerReader[], opts: ScanOptions): Promise<FlatTree> {
  // As many as the pull downloads at once: a layer's scan follows its download (growing-blob.ts),
  // and a slot held by a slow download must not keep a finished layer waiting.
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const ac = new AbortController();
  const onAbort = () => ac.abort(opts.signal?.reason);
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const pending: Promise<LayerEntries>[] = [];
  const budget = new SparseBudget();
  let failed: { error: unknown } | undefined;
  let active = 0;
  const waiting: (() => void)[] = [];
  const slot = async () => {
    if (active >= concurrency) await new Promise<void>((r) => waiting.push(r));
    active++;
  };
  const release = () => {
    active--;
    waiting.shift()?.();
  };
  for (const layer of layers) {
    const p = (async () => {
      await slot();
      try {
        ac.signal.throwIfAborted();
        return await readLayerEntries(layer, opts.warnings, ac.signal, opts.contents, budget);
      } finally {
        release();
      }
    })();
    // The first failure is the one to report: the others may be the abort it caused.
    p.catch((e: unknown) => {
      if (!failed) failed = { error: e };
      ac.abort(e);
    });
    pending.push(p);
  }
  try {
    const builder = new TreeBuilder({ warnings: opts.warnings, recordPaths: opts.recordPaths, ...(opts.maxPaths !== undefined ? { maxPaths: opts.maxPaths } : {}) });
    for (let i = 0; i < layers.length; i++) {
      const entries = await pending[i]!;
      // Let go of the entry list as soon as it is applied.
      pending[i] = Promise.resolve({ entries: [] });
      opts.signal?.throwIfAborted();
      const layer = layers[i]!;
      const info: { digest: string; diffId?: string } = { digest: layer.desc.digest };
      if (layer.diffId !== undefined) info.diffId = layer.diffId;
      // Content sources and layer changes name the layer by its LayerReader index.
      builder.applyLayer(layer.index, info, entries);
    }
    opts.layersApplied?.();
    return builder.finish();
  } catch (e) {
    if (!failed) failed = { error: e };
    ac.abort(e);
    await Promise.allSettled(pending);
    throw failed.error;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
